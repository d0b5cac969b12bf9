"""Re-ranking a caller's items for a user, and storing a user's attributes (cold start by segment).

``POST /v1/users/{user_id}/rank`` orders up to :data:`~serving.shop_api.MAX_RANK_ITEMS`
items (coupons, search results) by the user's current scores: one round trip
reads the user's candidate list, the top trending score and the items'
trending scores (``ZMSCORE``); the flow's ranker blends them as it blends a
list (:func:`online.blend.blend`). An item neither in the user's candidates nor
trending is ``unknown``: it keeps its order, after the others.

``PUT /v1/users/{user_id}`` stores the user's attributes in a hash under the
user's hash tag (``lr:{u:<user>}:attrs``), replaced whole, with the user TTL.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from online.blend import Pool, blend
from online.contract import CandidateList, RedisKeys, Settings, decode_candidates
from serving.catalog_routes import decode_json_body, require_media_type
from serving.experiment_state import ServingExperiments
from serving.http import HTTPError, read_body
from serving.ranker_weights import RankerWeights
from serving.shop_api import RankBody, RankedItem, RankedList, UserAttributes, UserAttributesBody, UserPath

__all__ = ["ShopHandlers", "rank_items"]


def _body_error(exc: msgspec.ValidationError) -> HTTPError:
    """msgspec's ``Expected ... - at `$.items[3]``` (or ``- at `key` in `$.attributes```) naming the top field."""
    text = str(exc)
    problem, _, _ = text.partition(" - at `")
    found = re.findall(r"`\$\.?([^`]*)`", text)
    path = found[-1] if found else ""
    field = re.split(r"[.\[]", path, maxsplit=1)[0] or "body"
    return HTTPError(422, "invalid_body", f"{path or 'body'}: {problem[:1].lower()}{problem[1:]}", field=field)


def rank_items(items: list[str], candidates: CandidateList, top: float | None, trending_scores: list[Any],
               weights: dict[str, float]) -> list[RankedItem]:
    """``items`` by the user's scores: the blend over their candidates and the items' trending; unknown ones last.

    >>> rank_items(["x", "b", "a", "z"], CandidateList(["a", "b"], [2.0, 1.0]), 5.0, [b"5", None, None, None], {})
    [RankedItem(item_id='a', score=2.0, source='personal'), RankedItem(item_id='b', score=1.0, source='personal'), RankedItem(item_id='x', score=1.0, source='trending'), RankedItem(item_id='z', score=None, source='unknown')]
    """
    wanted = list(dict.fromkeys(items))
    trending = [(item, math.exp(float(score) - top)) for item, score in zip(wanted, trending_scores, strict=True)
                if score is not None and top is not None]
    personal = list(zip(candidates.items, candidates.scores, strict=True))
    repeats = {candidates.items[i] for i in candidates.repeats if i < len(candidates.items)}
    ranked = blend(Pool(personal=personal, trending=trending, repeats=repeats), weights,
                   len(personal) + len(trending) + 1) if personal or trending else []
    asked = set(wanted)
    out = [RankedItem(item, round(score, 6), source) for item, score, source in ranked  # type: ignore[arg-type]
           if item in asked and source in ("personal", "trending")]
    scored = {entry.item_id for entry in out}
    out += [RankedItem(item, None, "unknown") for item in wanted if item not in scored]
    return out


class ShopHandlers:
    """The handlers of the rank and user routes; mixed into :class:`serving.app.LiverecoApp`."""

    settings: Settings
    keys: RedisKeys
    ranker_weights: RankerWeights

    @property
    def client(self) -> Any: ...

    @property
    def reads(self) -> Any: ...

    experiments: ServingExperiments

    def _record(self, user_id: str | None, experiment: str, variant: str, items: Any) -> str:
        raise NotImplementedError  # serving.list_routes.ListHandlers._record answers (it comes first in the app's MRO)

    async def _typed_body(self, request: Any, kind: type[Any]) -> Any:
        require_media_type(request.scope, (b"application/json",))
        body = await read_body(request.scope, request.receive, self.settings.max_body_bytes,
                               self.settings.http_request_timeout_s)
        try:
            return msgspec.convert(decode_json_body(body), kind)
        except msgspec.ValidationError as exc:
            raise _body_error(exc) from None

    async def rank(self, request: Any) -> RankedList:
        p: UserPath = request.params
        body: RankBody = await self._typed_body(request, RankBody)
        await self.ranker_weights.refresh(self.client, self.keys)
        wanted = list(dict.fromkeys(body.items))
        trending_key = self.keys.trending()
        pipe = self.reads.pipeline(transaction=False)
        pipe.execute_command("GET", self.keys.user_recs(p.user_id))
        pipe.execute_command("ZREVRANGE", trending_key, 0, 0, "WITHSCORES")
        pipe.execute_command("ZMSCORE", trending_key, *wanted)
        blob, top_reply, scores = await pipe.execute()
        experiment, variant_name, variant = self.experiments.choose(p.user_id, None)
        candidates = (decode_candidates(blob) if blob else None) or CandidateList([], [])
        if variant is not None and variant.control:  # trending only: the user's candidates play no part
            candidates = CandidateList([], [])
        top = None
        if top_reply:
            first = top_reply[0]
            top = float(first[1]) if isinstance(first, list | tuple) else float(top_reply[1])
        weights = {} if variant is not None and not variant.ranker else self.ranker_weights.for_user(p.user_id)
        items = rank_items(wanted, candidates, top, list(scores), weights)
        return RankedList(user_id=p.user_id, items=items, variant=variant_name,
                          rec_id=self._record(p.user_id, experiment, variant_name, items))

    async def put_user(self, request: Any) -> UserAttributes:
        p: UserPath = request.params
        body: UserAttributesBody = await self._typed_body(request, UserAttributesBody)
        key, ttl = self.keys.user_attributes(p.user_id), self.settings.user_ttl_s
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        if body.attributes:
            pipe.hset(key, mapping=dict(body.attributes))
            pipe.expire(key, ttl)
        await pipe.execute()
        return UserAttributes(user_id=p.user_id, attributes=dict(body.attributes), ttl_s=ttl)
