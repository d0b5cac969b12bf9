"""A/B experiments: named experiments with variants, traffic shares and a stable assignment of users.

An experiment splits users between variants by a stable hash of
``(experiment, user)``: the same user gets the same variant on every server
process and after every restart, and a share that grows (a ramp-up) moves
only the users it must. Each variant names how lists are made, among what
the product can do (:class:`VariantConfig`): the learned ranker or fixed
blend weights, exploration on or off, a diversity cap, the shop's rules on
or off, or **control**: trending only, the baseline a recommender has to beat.

Experiments are JSON documents (``PUT /v1/experiments/{name}`` or a file);
the server keeps them in Redis and re-reads them within a second, so shares
change at run time without a restart. A request may force a variant
(``?variant=`` for QA); that answer is attributed to the forced variant.

>>> exp = Experiment.from_json("home", {"variants": [
...     {"name": "control", "share": 0.5, "control": True},
...     {"name": "livereco", "share": 0.5}]})
>>> exp.assign("ada") == exp.assign("ada"), exp.assign("ada") in {"control", "livereco"}
(True, True)
>>> counts = {"control": 0, "livereco": 0}
>>> for n in range(10_000):
...     counts[exp.assign(f"user-{n}")] += 1
>>> all(abs(c / 10_000 - 0.5) < 0.02 for c in counts.values())
True
>>> Experiment.from_json("bad", {"variants": [{"name": "a", "share": 0.7}, {"name": "b", "share": 0.7}]})
Traceback (most recent call last):
...
ValueError: experiment 'bad': variant shares add up to 1.4; they must add up to 1
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_VARIANTS", "Experiment", "VariantConfig", "bucket"]

MAX_VARIANTS = 8
"""Variants per experiment: the ``variant`` label of the attribution metrics stays a small, closed set."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_BUCKETS = 10_000


def bucket(experiment: str, user_id: str) -> int:
    """The user's bucket (0-9,999) in ``experiment``: a stable hash, the same in every process and run.

    >>> bucket("home", "ada")
    7520
    """
    digest = hashlib.blake2b(f"{experiment}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS


@dataclass(frozen=True, slots=True)
class VariantConfig:
    """How one variant makes its lists."""

    name: str
    share: float
    control: bool = False
    """Trending only: what the shop would show without livereco."""
    ranker: bool = True
    """The learned blend; ``False``: personal candidates first, then trending (fixed order)."""
    exploration: bool = True
    rules: bool = True
    diversity_cap: int | None = None
    """At most this many items of one category in the top 10 (``None``: the server's default)."""

    @classmethod
    def from_json(cls, experiment: str, raw: Any) -> VariantConfig:
        if not isinstance(raw, dict):
            raise ValueError(f"experiment {experiment!r}: a variant must be an object")
        known = {"name", "share", "control", "ranker", "exploration", "rules", "diversity_cap"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"experiment {experiment!r}: variant field {unknown[0]!r} is not known "
                             f"(known: {', '.join(sorted(known))})")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"experiment {experiment!r}: variant name {name!r} must be 1-40 of a-z, 0-9, _ and -")
        share = raw.get("share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
            raise ValueError(f"experiment {experiment!r}: variant {name!r} share {share!r} must be a number in [0, 1]")
        flags = {}
        for flag in ("control", "ranker", "exploration", "rules"):
            value = raw.get(flag, flag != "control")
            if not isinstance(value, bool):
                raise ValueError(f"experiment {experiment!r}: variant {name!r} {flag} must be true or false")
            flags[flag] = value
        cap = raw.get("diversity_cap")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 100):
            raise ValueError(f"experiment {experiment!r}: variant {name!r} diversity_cap must be 1-100 or null")
        return cls(name, float(share), diversity_cap=cap, **flags)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "share": self.share, "control": self.control, "ranker": self.ranker,
                "exploration": self.exploration, "rules": self.rules, "diversity_cap": self.diversity_cap}


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named experiment: its variants with their shares (adding up to 1) and whether it is running."""

    name: str
    variants: tuple[VariantConfig, ...]
    active: bool = True

    @classmethod
    def from_json(cls, name: str, raw: Any) -> Experiment:
        """Validate an experiment document; errors name the experiment and the field."""
        if not _NAME.match(name):
            raise ValueError(f"experiment name {name[:60]!r} must be 1-40 of a-z, 0-9, _ and -")
        if not isinstance(raw, dict):
            raise ValueError(f"experiment {name!r}: must be an object with 'variants'")
        unknown = sorted(set(raw) - {"variants", "active", "name"})
        if unknown:
            raise ValueError(f"experiment {name!r}: field {unknown[0]!r} is not known (known: active, variants)")
        raw_variants = raw.get("variants")
        if not isinstance(raw_variants, list) or not 1 <= len(raw_variants) <= MAX_VARIANTS:
            raise ValueError(f"experiment {name!r}: variants must be a list of 1-{MAX_VARIANTS}")
        variants = tuple(VariantConfig.from_json(name, v) for v in raw_variants)
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {name!r}: variant names must be unique")
        total = sum(v.share for v in variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"experiment {name!r}: variant shares add up to {total:g}; they must add up to 1")
        active = raw.get("active", True)
        if not isinstance(active, bool):
            raise ValueError(f"experiment {name!r}: active must be true or false")
        return cls(name, variants, active)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "active": self.active, "variants": [v.to_json() for v in self.variants]}

    def assign(self, user_id: str) -> str:
        """The variant of ``user_id``: buckets are cut in the variants' order by their shares."""
        return self.variant_of(user_id).name

    def variant_of(self, user_id: str) -> VariantConfig:
        position = bucket(self.name, user_id)
        edge = 0.0
        for variant in self.variants:
            edge += variant.share * _BUCKETS
            if position < round(edge):
                return variant
        return self.variants[-1]

    def variant(self, name: str) -> VariantConfig | None:
        """The variant called ``name`` (for a forced ``?variant=``), or ``None``."""
        return next((v for v in self.variants if v.name == name), None)
