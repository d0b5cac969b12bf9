"""The ranker's model: a logistic regression learned by plain SGD, River's arithmetic without River's call overhead.

:class:`~online.ranker.BlendRanker` learns one pair per call from a handful of
feature differences. River's ``LogisticRegression(optimizer=SGD(lr),
intercept_lr=0.0)`` did that through a dozen Python calls and two Rust
``VectorDict`` copies per pair: ~23k instructions, a fifth of the ranker
stage. :class:`LogisticSGD` performs the same floating-point operations in
the same order (the weights are bit-identical to River's,
``tests/test_logistic_sgd.py`` checks it on a long random stream) as one
compiled loop: the label is always ``True`` (the pair's item beat the other), the
intercept never moves (its learning rate is 0) and there is no
regularisation, so nothing else of River's model is used.

>>> model = LogisticSGD(learning_rate=0.5)
>>> model.learn_one({"trending": 1.0, "personal": -0.5})
>>> model.weights
{'trending': 0.25, 'personal': -0.125}
>>> round(model.predict_proba_one({"trending": 1.0}), 4)   # sigmoid(0.25)
0.5622
"""

from __future__ import annotations

import math
from typing import Any, Protocol

__all__ = ["LogisticSGD", "PairModel"]

CLIP_GRADIENT = 1e12
"""River's default gradient clip: never reached by a log-loss gradient (at most 1), kept for exactness."""


class PairModel(Protocol):
    """What the ranker needs of its model (a protocol, so a test can record the pairs it learns)."""

    @property
    def weights(self) -> dict[str, float]: ...

    def learn_one(self, x: dict[str, float], y: bool = True) -> None: ...


class LogisticSGD:
    """Weights of a logistic regression with a zero intercept, learned from positive examples by SGD.

    ``weights`` holds only the features ever learned with a non-zero
    value, as River's model does (what the ranker publishes to Redis).
    """

    __slots__ = ("learning_rate", "weights")

    def __init__(self, learning_rate: float = 0.05, weights: dict[str, float] | None = None) -> None:
        self.learning_rate = learning_rate
        self.weights: dict[str, float] = {} if weights is None else weights

    def __reduce__(self) -> tuple[Any, ...]:  # a compiled class: pickled through its __init__
        return LogisticSGD, (self.learning_rate, self.weights)

    def raw_one(self, x: dict[str, float]) -> float:
        """The logit of ``x``: the weights' dot product with it, summed in ``x``'s order."""
        weights, raw = self.weights, 0.0
        for name, value in x.items():
            weight = weights.get(name)
            if weight is not None:
                raw += weight * value
        return raw

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """The probability that ``x`` is a positive example."""
        return 1.0 / (1.0 + math.exp(-self.raw_one(x)))

    def learn_one(self, x: dict[str, float], y: bool = True) -> None:
        """One SGD step of the log loss on ``x`` labelled ``y``."""
        z = self.raw_one(x) if y else -self.raw_one(x)
        sign = -1.0 if y else 1.0
        # River's Log.gradient, with its cut-offs for large margins.
        if z > 18.0:
            gradient = math.exp(-z) * sign
        elif z < -18.0:
            gradient = sign
        else:
            gradient = sign / (math.exp(z) + 1.0)
        gradient = min(max(gradient, -CLIP_GRADIENT), CLIP_GRADIENT)
        weights, rate = self.weights, self.learning_rate
        for name, value in x.items():
            weights[name] = weights.get(name, 0.0) - rate * (value * gradient)
