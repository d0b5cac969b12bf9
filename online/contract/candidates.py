"""The candidate-list encoding shared by the writer (flow) and the reader (server).

One list is one compact orjson blob under one key: item ids and scores in
rank order, the event time it reflects, and the acceptance time (ms, from the
stream entry id) of the event that produced it, so a reader can tell how
fresh it is.

Examples
--------
>>> blob = encode_candidates(CandidateList(["b", "c"], [0.9, 0.4], event_ts=1.7e9, accepted_ms=1700000000123))
>>> decoded = decode_candidates(blob)
>>> decoded.items, decoded.scores, decoded.accepted_ms
(['b', 'c'], [0.9, 0.4], 1700000000123)
>>> decode_candidates(encode_candidates(CandidateList(["b"], [1.0], repeats=[0], exclude=["z"]))).exclude
['z']
>>> decode_candidates(b"not json")
Traceback (most recent call last):
...
ValueError: candidate list: not valid JSON
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

__all__ = ["CandidateList", "decode_candidates", "encode_candidates"]

_VERSION = 1


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

    def __post_init__(self) -> None:
        if len(self.items) != len(self.scores):
            raise ValueError("candidate list: items and scores differ in length")
        if self.sources and len(self.sources) != len(self.items):
            raise ValueError("candidate list: items and sources differ in length")


def encode_candidates(candidates: CandidateList) -> bytes:
    payload: dict[str, object] = {
        "v": _VERSION,
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
    return orjson.dumps(payload)


def decode_candidates(blob: bytes | str) -> CandidateList:
    try:
        payload = orjson.loads(blob)
    except orjson.JSONDecodeError:
        raise ValueError("candidate list: not valid JSON") from None
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        raise ValueError(f"candidate list: unknown encoding version {payload.get('v') if isinstance(payload, dict) else None!r}")
    return CandidateList(
        items=payload["i"],
        scores=payload["s"],
        event_ts=payload.get("t", 0.0),
        accepted_ms=payload.get("a", 0),
        sources=payload.get("g", []),
        repeats=payload.get("r", []),
        exclude=payload.get("x", []),
    )
