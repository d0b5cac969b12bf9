"""The candidate-list encoding shared by the writer (flow) and the reader (server).

One list is one compact blob under one key: item ids and scores in rank
order, the event time it reflects, and the acceptance time (ms, from the
stream entry id) of the event that produced it, so a reader can tell how
fresh it is. Users' lists and items' neighbour lists use the same encoding.

Version 2 (written since the memory work of issue 4; :mod:`online.contract.packing`)
is the version byte ``0x02`` and a zlib stream of a 23-byte header (event
time and acceptance time as integer ms, the counts), the scores as float16
scaled by a power of two, repeat positions as uint16, then the ids joined by
newlines. Scores keep 11 significant bits, a relative error of at most
``2**-11`` (about 0.05 %: better than 3 significant digits; scores below
``2**-14`` of the list's best are kept to ``2**-24`` of it); the event time
keeps whole milliseconds. A user's 50 candidates take ~360 B instead of
~1,200 B of JSON, and decode in ~10 µs instead of ~4.5 µs (zlib's inflate is
most of it). A user's list may carry their strongest category affinities
(flag bit 2: their count as uint16 and their scores as 4-place decimals after
the repeat positions, their names after the other strings), which the server
needs for the affinity candidates (:mod:`online.affinity_candidates`); the
flow writes them only while ``LIVERECO_AFFINITY_CATEGORIES`` is on, and a
server older than them cannot read such a list (upgrade servers first).

Version 3 (written since issue 21's sink work) is version 2's body without
zlib: the version byte ``0x03``, a length byte, the same header, scores and
positions, then the items packed as numbers after a shared prefix
(:func:`~online.contract.packing.pack_ids`) and the other strings joined by
newlines. It decodes to exactly what version 2 does, in fewer bytes for ids
such as ``sku-000123`` or ``214536502`` (a full list 233 B instead of 359 B),
and costs the flow ~25k fewer instructions a list; a list whose ids do not pack
is written as version 2.

Version 1 is the orjson object ``{"v": 1, "i": ids, "s": scores (6 decimals),
"t": event time, "a": acceptance ms, ...}``. Readers take all three, so a server
reads lists an older flow wrote. Upgrade servers before flows: a server from
before version 3 cannot read it ("unknown encoding version 3"), one from before
version 2 reads only version 1 ("not valid JSON"); a flow can keep writing an
older version (``LIVERECO_BLOB_VERSION=2``) until they are.

Examples
--------
>>> blob = encode_candidates(CandidateList(["b", "c"], [0.9, 0.4], event_ts=1.7e9, accepted_ms=1700000000123))
>>> blob[0], len(blob) < len(encode_candidates(decode_candidates(blob), version=1))
(2, True)
>>> decoded = decode_candidates(blob)
>>> decoded.items, [round(s, 3) for s in decoded.scores], decoded.event_ts, decoded.accepted_ms
(['b', 'c'], [0.9, 0.4], 1700000000.0, 1700000000123)
>>> decode_candidates(encode_candidates(CandidateList(["b"], [1.0], repeats=[0], exclude=["z"]))).exclude
['z']
>>> with_affinities = CandidateList(["b"], [1.0], exclude=["z"], affinities=[("drama", 1.0), ("horror", 0.33333)])
>>> decode_candidates(encode_candidates(with_affinities)).affinities
[('drama', 1.0), ('horror', 0.3333)]
>>> quantize_affinity(0.33333) == 0.3333      # what the flow scores with: the value the server will decode
True
>>> decode_candidates(b'{"v":1,"i":["a"],"s":[0.5],"t":1.7e9,"a":5}').scores    # version 1, from an older flow
[0.5]
>>> decode_candidates(b"not json")
Traceback (most recent call last):
...
ValueError: candidate list: not valid JSON
>>> decode_candidates(b"\\x07...")
Traceback (most recent call last):
...
ValueError: candidate list: unknown encoding version 7
>>> decode_candidates(blob[:-4])
Traceback (most recent call last):
...
ValueError: candidate list: corrupt or truncated version-2 blob (zlib: Error -5 while decompressing data: incomplete or truncated stream)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import orjson

from online.contract.blob_writer import write_list_3
from online.contract.packing import (
    VERSION_2,
    VERSION_3,
    binary_body,
    frame,
    frame_3,
    join_strings,
    pack_decimal,
    pack_half,
    pack_ids,
    split_strings,
    unpack_decimal,
    unpack_half,
    unpack_ids,
)

__all__ = ["CandidateList", "decode_candidates", "encode_candidates", "quantize_affinity"]

_VERSION_1 = 1
_WHAT = "candidate list"
_HEADER = struct.Struct("<qqHHHB")
"""Event time (ms), acceptance time (ms), items, repeats, exclusions, flags."""
_HAS_SOURCES = 1
_HAS_AFFINITIES = 2
_AFFINITY = struct.Struct("<H")
_AFFINITY_PLACES = 4


def quantize_affinity(score: float) -> float:
    """``score`` as a list's blob keeps it (4 decimal places; the flow's relative affinities are at most 1.0).

    The flow's ranker stage scores with these values, so it scores what the
    server, which decodes them from the blob, serves.
    """
    return round(score * 10**_AFFINITY_PLACES) / float(10**_AFFINITY_PLACES)


@dataclass(slots=True)
class CandidateList:
    """Ranked items with scores; ``sources`` optionally tags each item's generator."""

    items: list[str]
    scores: list[float]
    event_ts: float = 0.0
    accepted_ms: int = 0
    sources: list[str] = field(default_factory=list)
    repeats: list[int] = field(default_factory=list)
    """Positions of items that are the user's own recent items (a ranker feature)."""
    exclude: list[str] = field(default_factory=list)
    """Items never to show this user (purchased, disliked, consumed), trending included."""
    affinities: list[tuple[str, float]] = field(default_factory=list)
    """The user's strongest categories, relative to the strongest (the affinity candidates' input)."""

    def __post_init__(self) -> None:
        if len(self.items) != len(self.scores):
            raise ValueError("candidate list: items and scores differ in length")
        if self.sources and len(self.sources) != len(self.items):
            raise ValueError("candidate list: items and sources differ in length")


def encode_candidates(candidates: CandidateList, version: int = VERSION_2) -> bytes:
    """The blob of ``candidates`` in encoding ``version`` (3; 2 for servers that read up to 2, 1 for those that
    read only 1). Version 3 falls back to version 2 for ids :func:`~online.contract.packing.pack_ids` cannot pack."""
    if version == _VERSION_1:
        return _encode_v1(candidates)
    if version != VERSION_2 and version != VERSION_3:
        raise ValueError(f"{_WHAT}: cannot encode version {version!r} (known: 1, 2, 3)")
    items, repeats, exclude, sources = candidates.items, candidates.repeats, candidates.exclude, candidates.sources
    affinities = candidates.affinities
    if version == VERSION_3:  # the common case in one compiled call; None: version 2 or an error, said below
        blob = write_list_3(items, candidates.scores, candidates.event_ts, candidates.accepted_ms, repeats, exclude,
                            sources, affinities, _WHAT)
        if blob is not None:
            return blob
    try:
        header = _HEADER.pack(round(candidates.event_ts * 1000), candidates.accepted_ms, len(items), len(repeats),
                              len(exclude), (_HAS_SOURCES if sources else 0) | (_HAS_AFFINITIES if affinities else 0))
        positions = struct.pack(f"<{len(repeats)}H", *repeats) if repeats else b""
        if affinities:
            positions += _AFFINITY.pack(len(affinities)) + pack_decimal([score for _, score in affinities], "h",
                                                                        _AFFINITY_PLACES)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{_WHAT}: cannot encode version {version} ({exc})") from None
    packed = pack_ids(items) if version == VERSION_3 else None
    if packed is not None:
        others = exclude + sources if exclude or sources else []
        if affinities:
            others = others + [category for category, _ in affinities]
        return frame_3(header + pack_half(candidates.scores) + positions + packed + join_strings(others, _WHAT))
    strings = items + exclude + sources if exclude or sources else items
    if affinities:
        strings = strings + [category for category, _ in affinities]
    return frame(header + pack_half(candidates.scores) + positions + join_strings(strings, _WHAT))


def decode_candidates(blob: bytes | str) -> CandidateList:
    """The list in ``blob``, version 3, 2 or 1; ``ValueError`` naming the problem for anything else."""
    framed = binary_body(blob, _WHAT)
    if framed is None:
        return _decode_v1(blob)
    version, body = framed
    affinity_scores: list[float] = []
    try:
        event_ms, accepted_ms, n, n_repeats, n_exclude, flags = _HEADER.unpack_from(body)
        scores, offset = unpack_half(body, _HEADER.size, n)
        repeats = list(struct.unpack_from(f"<{n_repeats}H", body, offset)) if n_repeats else []
        offset += 2 * n_repeats
        if flags & _HAS_AFFINITIES:
            (n_affinities,) = _AFFINITY.unpack_from(body, offset)
            affinity_scores, offset = unpack_decimal(body, offset + _AFFINITY.size, n_affinities, "h")
    except struct.error:
        raise ValueError(f"{_WHAT}: truncated version-{version} blob ({len(body)} bytes after its version byte"
                         f"{' and decompression' if version == VERSION_2 else ''})") from None
    n_sources = n if flags & _HAS_SOURCES else 0
    if version == VERSION_3:
        items, offset = unpack_ids(body, offset, n, _WHAT)
        strings = items + split_strings(body[offset:], n_exclude + n_sources + len(affinity_scores), _WHAT)
    else:
        strings = split_strings(body[offset:], n + n_exclude + n_sources + len(affinity_scores), _WHAT)
    if affinity_scores:
        affinities = list(zip(strings[-len(affinity_scores):], affinity_scores, strict=True))
        del strings[-len(affinity_scores):]
        return CandidateList(strings[:n], scores, event_ms / 1000, accepted_ms, strings[n + n_exclude:], repeats,
                             strings[n:n + n_exclude], affinities)
    if n_exclude or n_sources:
        return CandidateList(strings[:n], scores, event_ms / 1000, accepted_ms, strings[n + n_exclude:], repeats,
                             strings[n:n + n_exclude])
    return CandidateList(strings, scores, event_ms / 1000, accepted_ms, [], repeats)


def _encode_v1(candidates: CandidateList) -> bytes:
    payload: dict[str, object] = {
        "v": _VERSION_1,
        "i": candidates.items,
        "s": [round(s, 6) for s in candidates.scores],
        "t": candidates.event_ts,
        "a": candidates.accepted_ms,
    }
    if candidates.sources:
        payload["g"] = candidates.sources
    if candidates.repeats:
        payload["r"] = candidates.repeats
    if candidates.exclude:
        payload["x"] = candidates.exclude
    if candidates.affinities:
        payload["f"] = [[category, score] for category, score in candidates.affinities]
    return orjson.dumps(payload)


def _decode_v1(blob: bytes | str) -> CandidateList:
    try:
        payload = orjson.loads(blob)
    except orjson.JSONDecodeError:
        raise ValueError(f"{_WHAT}: not valid JSON") from None
    if not isinstance(payload, dict) or payload.get("v") != _VERSION_1:
        raise ValueError(f"{_WHAT}: unknown encoding version {payload.get('v') if isinstance(payload, dict) else None!r}")
    try:
        return CandidateList(
            items=payload["i"],
            scores=payload["s"],
            event_ts=payload.get("t", 0.0),
            accepted_ms=payload.get("a", 0),
            sources=payload.get("g", []),
            repeats=payload.get("r", []),
            exclude=payload.get("x", []),
            affinities=[(category, score) for category, score in payload.get("f", [])],
        )
    except KeyError as exc:
        raise ValueError(f"{_WHAT}: version-1 blob without the field {exc}") from None
    except TypeError as exc:
        raise ValueError(f"{_WHAT}: malformed version-1 blob ({exc})") from None
