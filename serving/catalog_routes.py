"""The catalog and rules endpoints' handlers (scope ``admin``): items one by one or in bulk, and the rules.

Writes go through redis-py's asyncio client (the fast reader only reads),
with the I/O-free operations of :mod:`online.catalog.protocol` and
:mod:`online.catalog.rules`, the same ones ``livereco catalog`` runs. A bad
item or rule is a 422 naming its field (:class:`~online.catalog.item.CatalogError`);
a body that is not JSON is a 400. After a write the server refreshes its own
catalog copy at once (the other servers within ~250 ms), so a client reading
its own write through the same server sees it.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from online.catalog.item import CatalogError, Item, parse_item
from online.catalog.protocol import parse_bulk
from online.catalog.rules import Rules, parse_rules
from online.contract import Settings
from serving.catalog_state import ServingCatalog, run_steps_async
from serving.http import HTTPError, Scope, read_body
from serving.shop_api import MAX_BULK_BYTES, MAX_BULK_ITEMS, ItemDeleted, ItemPath, ItemRefusal, ItemsWritten

__all__ = ["CatalogHandlers", "decode_json_body", "require_media_type"]

_JSON = (b"application/json",)
_PATCH_TYPES = (b"application/json", b"application/merge-patch+json")
_BULK_TYPES = (b"application/json", b"application/x-ndjson")


def require_media_type(scope: Scope, accepted: tuple[bytes, ...]) -> bytes:
    """The request's media type if it is one of ``accepted`` (UTF-8), else a 415 naming them."""
    value = next((v for name, v in scope.get("headers", ()) if name == b"content-type"), None)
    wanted = " or ".join(kind.decode() for kind in accepted)
    if value is None:
        raise HTTPError(415, "unsupported_media_type", f"content-type: missing; send {wanted}", field="content-type")
    media, _, params = value.partition(b";")
    media = media.strip().lower()
    charset = next((p.split(b"=", 1)[1].strip().strip(b'"').lower() for p in params.split(b";")
                    if p.strip().lower().startswith(b"charset=")), b"utf-8")
    if media not in accepted or charset not in (b"utf-8", b"utf8"):
        raise HTTPError(415, "unsupported_media_type", f"content-type: {value.decode('latin-1')[:100]!r} is not"
                        f" accepted; send {wanted}", field="content-type")
    return media


def decode_json_body(body: bytes) -> Any:
    """The body's JSON value; 400 naming ``body`` when it is not JSON (or not UTF-8)."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPError(400, "bad_request", f"body: not JSON ({exc})", field="body") from None


def _invalid(exc: CatalogError, code: str = "invalid_item") -> HTTPError:
    return HTTPError(422, code, str(exc), field=exc.field)


def _now_ms() -> int:
    return int(time.time() * 1000)


class CatalogHandlers:
    """The handlers of the catalog and rules routes; mixed into :class:`serving.app.LiverecoApp`."""

    settings: Settings
    catalog: ServingCatalog

    @property
    def client(self) -> Any: ...

    async def _body(self, request: Any, accepted: tuple[bytes, ...], limit: int | None = None) -> tuple[bytes, bytes]:
        media = require_media_type(request.scope, accepted)
        body = await read_body(request.scope, request.receive, limit or self.settings.max_body_bytes,
                               self.settings.http_request_timeout_s)
        return media, body

    async def _written(self) -> None:
        await self.catalog.refresh(self.client)

    async def put_item(self, request: Any) -> Item:
        p: ItemPath = request.params
        _, body = await self._body(request, _JSON)
        try:
            item = parse_item(decode_json_body(body), item_id=p.item_id)
        except CatalogError as exc:
            raise _invalid(exc) from None
        await run_steps_async(self.client, self.catalog.commands.put(item, _now_ms()))
        await self._written()
        return item

    async def patch_item(self, request: Any) -> Item:
        p: ItemPath = request.params
        _, body = await self._body(request, _PATCH_TYPES)
        patch = decode_json_body(body)
        try:
            changed = await run_steps_async(self.client, self.catalog.commands.patch(p.item_id, patch, _now_ms()))
        except CatalogError as exc:
            raise _invalid(exc) from None
        if changed is None:
            raise HTTPError(404, "unknown_item", f"item_id: no catalog item {p.item_id[:64]!r}", field="item_id")
        await self._written()
        return changed

    async def get_item(self, request: Any) -> Item:
        p: ItemPath = request.params
        item = await run_steps_async(self.client, self.catalog.commands.get(p.item_id))
        if item is None:
            raise HTTPError(404, "unknown_item", f"item_id: no catalog item {p.item_id[:64]!r}", field="item_id")
        return item

    async def delete_item(self, request: Any) -> ItemDeleted:
        p: ItemPath = request.params
        if not await run_steps_async(self.client, self.catalog.commands.delete(p.item_id, _now_ms())):
            raise HTTPError(404, "unknown_item", f"item_id: no catalog item {p.item_id[:64]!r}", field="item_id")
        await self._written()
        return ItemDeleted(item_id=p.item_id)

    async def bulk_items(self, request: Any) -> ItemsWritten:
        media, body = await self._body(request, _BULK_TYPES, MAX_BULK_BYTES)
        if media == b"application/json" and not body.lstrip().startswith(b"["):
            raise HTTPError(400, "bad_request", "body: expected a JSON array of items (or NDJSON with content-type"
                            " application/x-ndjson)", field="body")
        try:
            good, bad = parse_bulk(body, MAX_BULK_ITEMS)
        except CatalogError as exc:
            status = 413 if "more than" in exc.message else 400
            raise HTTPError(status, "body_too_large" if status == 413 else "bad_request", str(exc),
                            field="body") from None
        versions = await run_steps_async(self.client, self.catalog.commands.put_many([item for _, item in good],
                                                                                     _now_ms()))
        unchanged = sum(1 for version in versions if version == 0)
        if len(versions) > unchanged:
            await self._written()
        return ItemsWritten(written=len(versions) - unchanged, unchanged=unchanged, rejected=len(bad),
                            errors=[ItemRefusal(index=index, field=error.field, message=error.message)
                                    for index, error in bad])

    async def get_rules(self, request: Any) -> Rules:
        return await run_steps_async(self.client, self.catalog.rules_commands.get())

    async def put_rules(self, request: Any) -> Rules:
        _, body = await self._body(request, _JSON)
        try:
            rules = parse_rules(decode_json_body(body))
        except CatalogError as exc:
            raise _invalid(exc, "invalid_rules") from None
        version = await run_steps_async(self.client, self.catalog.rules_commands.put(rules))
        await self._written()
        return msgspec.structs.replace(rules, version=version)
