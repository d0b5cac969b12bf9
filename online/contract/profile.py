"""The user-profile encoding: written by the flow's sink, read by the server's profile endpoint.

A profile is the user's session, their recent items (newest first) with
summed interest weights and last times, the session embedding, and their top
category affinities.

Version 2 (:mod:`online.contract.packing`) is the version byte ``0x02`` and a
zlib stream of the counts, the recent items' times as whole seconds (uint32),
their weights (int32), the embedding and the affinity scores (int16) as
decimals with 4 places, then the session id, recent item ids and categories
joined by newlines. Numbers decode to what version 1 wrote (rounded to 4
decimals; fewer only for a weight beyond ±214,748 or an embedding value or
affinity beyond ±3.2767, which the flow does not make); times are whole
seconds (version 1: as sent). With 20 recent items, a 32-d embedding and 5
affinities a profile takes ~350 B instead of ~1,150 B of JSON; the server
decodes it in ~20 µs instead of ~6.5 µs (a profile read is not the hot path).

Version 3 is version 2's body without zlib, the recent items' ids packed as
numbers (:func:`~online.contract.packing.pack_ids`); the times are the newest
and the others' seconds before it (uint16) when all are within 18 hours of it,
the weights int16 when all are within ±3.2767. It decodes to what version 2
does (a full profile 294 B instead of 354 B); one whose ids do not pack is
written as version 2.

Version 1 is the orjson object the server returned as it was. Readers take
all three (see :mod:`online.contract.candidates` for the upgrade order).

Examples
--------
>>> blob = encode_profile("s1", [("sku-2", 3.0, 1700000060.5), ("sku-1", 1.1, 1700000000.0)], [0.25, -0.1],
...                       [("shoes", 1.0), ("socks", 0.4)])
>>> profile = decode_profile(blob)
>>> profile.session_id, profile.recent
('s1', [('sku-2', 3.0, 1700000060.0), ('sku-1', 1.1, 1700000000.0)])
>>> profile.session_embedding, profile.affinities
([0.25, -0.1], [('shoes', 1.0), ('socks', 0.4)])
>>> rounded = decode_profile(encode_profile("s1", [("sku-1", 1.23456, 1.7e9)], [0.123456]))
>>> rounded.recent, rounded.session_embedding
([('sku-1', 1.2346, 1700000000.0)], [0.1235])
>>> decode_profile(encode_profile("s1", [("sku-2", 3.0, 1700000060.5)], version=1)).recent   # from an older flow
[('sku-2', 3.0, 1700000060.5)]
>>> decode_profile(blob[:10])
Traceback (most recent call last):
...
ValueError: profile: corrupt or truncated version-2 blob (zlib: Error -5 while decompressing data: incomplete or truncated stream)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from online.contract.blob_writer import write_profile_3
from online.contract.packing import (
    VERSION_2,
    VERSION_3,
    binary_body,
    frame,
    frame_3,
    join_strings,
    pack_decimal,
    pack_decimal_exactly,
    pack_ids,
    split_strings,
    unpack_decimal,
    unpack_ids,
)

__all__ = ["Profile", "decode_profile", "encode_profile"]

_VERSION_1 = 1
_WHAT = "profile"
_HEADER = struct.Struct("<HHH")
"""Recent items, embedding dimensions, affinities."""
_PLACES = 4
_SINCE_FIRST = 0x8000
"""Version 3: set in the recent items' count when their times are the first (uint32) and each other's seconds
before it (uint16), all within 18 hours of the first."""
_SHORT_WEIGHTS = 0x4000
"""Version 3: set in the recent items' count when their weights are int16 (all within ±3.2767), not int32."""


@dataclass(slots=True)
class Profile:
    session_id: str
    recent: list[tuple[str, float, float]] = field(default_factory=list)
    """``(item, summed weight, last time)``, newest first."""
    session_embedding: list[float] = field(default_factory=list)
    affinities: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The profile as the server answers it."""
        return {"session_id": self.session_id,
                "recent": [{"item_id": i, "weight": w, "ts": ts} for i, w, ts in self.recent],
                "session_embedding": self.session_embedding,
                "affinities": [[category, score] for category, score in self.affinities]}


def encode_profile(session_id: str, recent: Sequence[tuple[str, float, float]],
                   session_embedding: Sequence[float] = (), affinities: Sequence[tuple[str, float]] = (),
                   version: int = VERSION_2) -> bytes:
    """The profile blob: the session, the recent items (newest first), the session embedding, top category affinities.

    Version 3 falls back to version 2 when :func:`~online.contract.packing.pack_ids` cannot pack the recent items.
    """
    if version == _VERSION_1:
        return orjson.dumps({"session_id": session_id, "recent": [[i, round(w, 4), ts] for i, w, ts in recent],
                             "session_embedding": [round(x, 4) for x in session_embedding],
                             "affinities": [[category, round(score, 4)] for category, score in affinities]})
    if version != VERSION_2 and version != VERSION_3:
        raise ValueError(f"{_WHAT}: cannot encode version {version!r} (known: 1, 2, 3)")
    if version == VERSION_3:  # the common case in one compiled call; None: version 2 or an error, said below
        blob = write_profile_3(session_id, recent if isinstance(recent, list) else list(recent), session_embedding, 0.0,
                               affinities, _WHAT)
        if blob is not None:
            return blob
    n = len(recent)
    packed = pack_ids([item for item, _, _ in recent]) if version == VERSION_3 and n < _SHORT_WEIGHTS else None
    weights = [w for _, w, _ in recent]
    short = pack_decimal_exactly(weights, "h", _PLACES) if packed is not None else None
    try:
        flags = 0 if short is None else _SHORT_WEIGHTS
        seconds = [int(ts) for _, _, ts in recent]
        if packed is not None and n and all(0 <= seconds[0] - t <= 0xFFFF for t in seconds):
            flags |= _SINCE_FIRST
            times = struct.pack(f"<I{n - 1}H", seconds[0], *[seconds[0] - t for t in seconds[1:]])
        else:
            times = struct.pack(f"<{n}I", *seconds)
        header = _HEADER.pack(n | flags, len(session_embedding), len(affinities))
    except (struct.error, OverflowError, ValueError) as exc:
        raise ValueError(f"{_WHAT}: cannot encode version {version} ({exc})") from None
    numbers = (header + times + (short if short is not None else pack_decimal(weights, "i", _PLACES))
               + pack_decimal(session_embedding, "h", _PLACES) + pack_decimal([score for _, score in affinities], "h",
                                                                              _PLACES))
    if packed is not None:
        return frame_3(numbers + packed + join_strings([session_id, *[c for c, _ in affinities]], _WHAT))
    strings = [session_id, *[item for item, _, _ in recent], *[category for category, _ in affinities]]
    return frame(numbers + join_strings(strings, _WHAT))


def decode_profile(blob: bytes | str) -> Profile:
    """The profile in ``blob``, version 3, 2 or 1; ``ValueError`` naming the problem for anything else."""
    framed = binary_body(blob, _WHAT)
    if framed is None:
        return _decode_v1(blob)
    version, body = framed
    try:
        n, dims, n_affinities = _HEADER.unpack_from(body)
        flags = n & (_SINCE_FIRST | _SHORT_WEIGHTS) if version == VERSION_3 else 0
        n &= ~flags
        if flags & _SINCE_FIRST:
            first, *ago = struct.unpack_from(f"<I{n - 1}H", body, _HEADER.size)
            times: Sequence[int] = [first, *[first - d for d in ago]]
            offset = _HEADER.size + 4 + 2 * (n - 1)
        else:
            times = struct.unpack_from(f"<{n}I", body, _HEADER.size)
            offset = _HEADER.size + 4 * n
        weights, offset = unpack_decimal(body, offset, n, "h" if flags & _SHORT_WEIGHTS else "i")
        embedding, offset = unpack_decimal(body, offset, dims, "h")
        scores, offset = unpack_decimal(body, offset, n_affinities, "h")
    except struct.error:
        raise ValueError(f"{_WHAT}: truncated version-{version} blob ({len(body)} bytes after its version byte"
                         f"{' and decompression' if version == VERSION_2 else ''})") from None
    if version == VERSION_3:
        items, offset = unpack_ids(body, offset, n, _WHAT)
        strings = split_strings(body[offset:], 1 + n_affinities, _WHAT)
        return Profile(strings[0], list(zip(items, weights, map(float, times), strict=True)), embedding,
                       list(zip(strings[1:], scores, strict=True)))
    strings = split_strings(body[offset:], 1 + n + n_affinities, _WHAT)
    return Profile(strings[0], list(zip(strings[1:n + 1], weights, map(float, times), strict=True)), embedding,
                   list(zip(strings[n + 1:], scores, strict=True)))


def _decode_v1(blob: bytes | str) -> Profile:
    try:
        payload = orjson.loads(blob)
    except orjson.JSONDecodeError:
        raise ValueError(f"{_WHAT}: not valid JSON") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{_WHAT}: version-1 blob is not a JSON object")
    try:
        return Profile(payload.get("session_id", ""), [(i, w, ts) for i, w, ts in payload.get("recent", [])],
                       payload.get("session_embedding", []),
                       [(category, score) for category, score in payload.get("affinities", [])])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{_WHAT}: malformed version-1 blob ({exc})") from None
