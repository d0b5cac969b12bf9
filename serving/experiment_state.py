"""The experiments in force, in process: re-read from Redis every ``interval_s`` (a share change takes effect on
every server within a second), never read on a list request.

The experiments are one Redis hash (``lr:experiments``: name -> JSON document,
:class:`online.experiments.Experiment`). The first *active* experiment by name
decides how a user's lists are made: its :meth:`~online.experiments.Experiment.variant_of`
the user (a stable hash, the same in every process), or the variant a request
forces (``?variant=``, for QA). With no active experiment every list is the
``default`` variant: the product as configured.

>>> from online.experiments import Experiment
>>> state = ServingExperiments(RedisKeys("lr", 1))
>>> state.choose("ada", None)
('', 'default', None)
>>> state.experiments = {"home": Experiment.from_json("home", {"variants": [{"name": "control", "share": 1.0,
...                                                                           "control": True}]})}
>>> experiment, name, variant = state.choose("ada", None)
>>> experiment, name, variant.control
('home', 'control', True)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from online.contract import RedisKeys
from online.experiments import Experiment, VariantConfig
from serving.refresh_loop import refresh_forever

__all__ = ["DEFAULT_VARIANT", "ServingExperiments"]

log = logging.getLogger("livereco.serving")

DEFAULT_VARIANT = "default"
"""The variant of every list while no experiment is active."""


class ServingExperiments:
    """The stored experiments as of the last refresh, and the variant each user gets."""

    def __init__(self, keys: RedisKeys, interval_s: float = 0.25) -> None:
        self.keys = keys
        self.interval_s = interval_s
        self.experiments: dict[str, Experiment] = {}
        self.refreshed_at = 0.0

    @staticmethod
    def parse(stored: dict[Any, Any]) -> dict[str, Experiment]:
        """The stored documents, each validated; a broken one is logged and left out."""
        out: dict[str, Experiment] = {}
        for raw_name, raw in stored.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            try:
                out[name] = Experiment.from_json(name, orjson.loads(raw))
            except (ValueError, orjson.JSONDecodeError) as exc:
                log.warning("experiment %r ignored: %s", name[:60], exc)
        return out

    async def refresh(self, client: Any) -> None:
        self.experiments = self.parse(await client.hgetall(self.keys.experiments()))
        self.refreshed_at = time.monotonic()

    async def run(self, client: Any) -> None:
        """Refresh every ``interval_s`` until cancelled; a Redis outage keeps the last copy."""
        await refresh_forever(lambda: self.refresh(client), lambda: self.interval_s, "experiments")

    def in_force(self) -> Experiment | None:
        """The experiment that decides how lists are made: the first active one by name."""
        active = sorted(name for name, experiment in self.experiments.items() if experiment.active)
        return self.experiments[active[0]] if active else None

    def choose(self, user_id: str | None, forced: str | None) -> tuple[str, str, VariantConfig | None]:
        """(experiment, variant name, its configuration) for a request (``forced``: a variant name of the experiment
        in force, else ignored)."""
        experiment = self.in_force()
        if experiment is None:
            return "", DEFAULT_VARIANT, None
        variant = experiment.variant(forced) if forced else None  # a name it does not have forces nothing
        if variant is not None:
            pass
        elif not user_id:  # no user to assign (trending, similar without user_id): the first variant
            variant = experiment.variants[0]
        else:
            variant = experiment.variant_of(user_id)
        return experiment.name, variant.name, variant
