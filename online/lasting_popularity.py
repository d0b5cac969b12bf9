"""Items' popularity over a longer horizon than trending's: a ranker feature for lasting taste.

Trending (:mod:`online.trending`) follows what is popular now, with one
half-life (``LIVERECO_TRENDING_HALF_LIFE_S``). Which horizon predicts best
depends on the log: on MovieTweetings tuned decayed popularity prefers 3 days
to 1, on RSC15 an hour. Each ranker replica therefore keeps a second,
slower popularity of every item (forward-decayed counts of its events,
half-life ``LIVERECO_LASTING_HALF_LIFE_S``) and gives each candidate its value
relative to the most popular item as the feature ``lasting``: the ranker's
weights then mix the two horizons per deployment instead of a setting per log.

Scores are forward-decayed log scores (:mod:`online.forward_decay`): an
item's only grows, so the best is a running maximum and a relative value is
``exp(score - best)``, the ratio of the two decayed counts now.

>>> lasting = LastingPopularity(half_life_s=86400.0)
>>> for item, ts in [("old", 0.0), ("old", 1.0), ("old", 2.0), ("new", 86400.0 * 2)]:
...     lasting.learn_one(item, ts)
>>> {item: round(value, 3) for item, value in lasting.relative(["old", "new", "unknown"]).items()}
{'old': 0.75, 'new': 1.0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from online.forward_decay import ForwardDecay

__all__ = ["LastingPopularity"]


class LastingPopularity:
    """Forward-decayed event counts of every item this replica has seen, and the best of them.

    One float per item (about 100 B with the dict's entry): bounded by the
    catalog, as the items' own state is.
    """

    __slots__ = ("best", "decay", "scores")

    def __init__(self, half_life_s: float) -> None:
        self.decay = ForwardDecay(half_life_s)
        self.scores: dict[str, float] = {}
        self.best = -math.inf

    def learn_one(self, item: str, ts: float) -> None:
        """One more event of ``item`` at event time ``ts``."""
        score = self.decay.add(self.scores.get(item), 1.0, ts)
        self.scores[item] = score
        if score > self.best:
            self.best = score

    def relative(self, items: Iterable[str]) -> dict[str, float]:
        """Each of ``items``' popularity relative to the most popular item (1.0); unknown items are left out."""
        scores, best, exp = self.scores, self.best, math.exp
        out: dict[str, float] = {}
        for item in items:
            score = scores.get(item)
            if score is not None:
                out[item] = exp(score - best)
        return out
