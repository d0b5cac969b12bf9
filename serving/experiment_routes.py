"""The experiment and item-stats handlers: ``PUT/GET /v1/experiments/{name}`` (admin) and
``GET /v1/items/{item_id}/stats`` (read).

An experiment is stored as JSON in one Redis hash (``lr:experiments``); every
server re-reads it every 250 ms (:class:`serving.experiment_state.ServingExperiments`),
so a new share (ramp up, roll back) is in force everywhere within a second. A
``PUT`` also refreshes the answering server's copy at once.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from online.contract import RedisKeys
from online.experiments import Experiment
from serving.experiment_api import (
    ExperimentBody,
    ExperimentDoc,
    ExperimentPath,
    ItemStats,
    ItemStatsRequest,
    VariantBody,
)
from serving.experiment_state import ServingExperiments
from serving.http import HTTPError

__all__ = ["ExperimentHandlers", "item_stats"]


def item_stats(item_id: str, stored: dict[Any, Any]) -> ItemStats:
    """An item's stats from its ``HGETALL`` reply.

    >>> item_stats("a", {b"impressions": b"4", b"clicks": b"1", b"revenue": b"9.5"})
    ItemStats(item_id='a', impressions=4, clicks=1, ctr=0.25, carts=0, conversions=0, revenue=9.5)
    """
    values = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in stored.items()}
    impressions, clicks = int(values.get("impressions", 0)), int(values.get("clicks", 0))
    return ItemStats(item_id=item_id, impressions=impressions, clicks=clicks,
                     ctr=round(clicks / impressions, 6) if impressions else None, carts=int(values.get("carts", 0)),
                     conversions=int(values.get("conversions", 0)), revenue=round(values.get("revenue", 0.0), 6))


def _doc(experiment: Experiment) -> ExperimentDoc:
    return ExperimentDoc(name=experiment.name, active=experiment.active,
                         variants=[msgspec.convert(v.to_json(), VariantBody) for v in experiment.variants])


class ExperimentHandlers:
    """Mixed into :class:`serving.app.LiverecoApp`."""

    keys: RedisKeys
    experiments: ServingExperiments

    @property
    def client(self) -> Any: ...

    async def _typed_body(self, request: Any, kind: type[Any]) -> Any: ...

    async def put_experiment(self, request: Any) -> ExperimentDoc:
        p: ExperimentPath = request.params
        body: ExperimentBody = await self._typed_body(request, ExperimentBody)
        try:
            experiment = Experiment.from_json(p.name, msgspec.to_builtins(body))
        except ValueError as exc:
            raise HTTPError(422, "invalid_experiment", str(exc), field="variants") from None
        await self.client.hset(self.keys.experiments(), p.name, orjson.dumps(experiment.to_json()))
        await self.experiments.refresh(self.client)
        return _doc(experiment)

    async def get_experiment(self, request: Any) -> ExperimentDoc:
        p: ExperimentPath = request.params
        raw = await self.client.hget(self.keys.experiments(), p.name)
        if raw is None:
            raise HTTPError(404, "unknown_experiment", f"name: no experiment {p.name!r}", field="name")
        return _doc(Experiment.from_json(p.name, orjson.loads(raw)))

    async def get_item_stats(self, request: Any) -> ItemStats:
        p: ItemStatsRequest = request.params
        return item_stats(p.item_id, await self.client.hgetall(self.keys.item_stats(p.item_id)))
