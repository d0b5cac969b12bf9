"""The one protocol every recommender follows: learn from one event, recommend for one user.

The evaluation driver (:func:`flows.evaluation.evaluate_baseline`), the
reference models (:mod:`online.baselines`), livereco's in-process model
(:class:`flows.model.LiverecoModel`) and the shared check suite
(``tests/test_model_checks.py``) all speak it: ``learn_one(event)`` updates
the model with one event, ``recommend(user_id, n)`` returns at most ``n``
item ids, best first, for a user who may never have been seen (an empty list
is an answer; ``n == 0`` always gives one).

Examples
--------
>>> from online.baselines import MostPopular
>>> from online.contract import Event
>>> model: Recommender = MostPopular()
>>> model.learn_one(Event("u", "a", "view", 0.0))
>>> model.recommend("someone else", 5), isinstance(model, Recommender)
(['a'], True)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from online.contract import Event

__all__ = ["Recommender"]


@runtime_checkable
class Recommender(Protocol):
    """Learns one event at a time; recommends ``n`` items for a user, best first."""

    def learn_one(self, event: Event) -> None:
        """Update the model with ``event`` (predict-then-learn: call after recommending for it)."""
        ...

    def recommend(self, user_id: str, n: int) -> list[str]:
        """At most ``n`` item ids for ``user_id``, best first; never seen users get an answer too."""
        ...
