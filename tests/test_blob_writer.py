"""online.contract.blob_writer writes the bytes packing's pieces and the old encoders write, or declines.

Compiled or pure (``tests/test_compiled.py`` runs the suite's build both ways), every case is compared with
the struct-based functions it replaces: random ids, scores, weights and times around every boundary.
"""

from __future__ import annotations

import math
import random
import struct

import pytest

from online.contract import CandidateList, decode_candidates, decode_profile
from online.contract.blob_writer import (
    BytesWriter,
    half_bits,
    write_decimal_exactly,
    write_half,
    write_ids,
    write_list_3,
    write_profile_3,
)
from online.contract.candidates import encode_candidates
from online.contract.packing import pack_decimal_exactly, pack_half, pack_ids
from online.contract.profile import encode_profile


def _ids(rng: random.Random) -> list[str]:
    shape = rng.choice(["sku-{:05d}", "{:09d}", "2{:08d}", "x{:d}", "{:d}", "ab{:03d}c", "é{:04d}", "00{:02d}",
                        "item-{:012d}", "{:04d}\u0661"])
    top = rng.choice([9, 99, 999, 65535, 65536, 99999, 16777216, 10**8, 10**9 - 1])
    n = rng.choice([0, 1, 2, 5, 50])
    ids = [shape.format(rng.randint(0, top)) for _ in range(n)]
    if ids and rng.random() < 0.1:
        ids[rng.randrange(n)] += rng.choice(["", "1", "a"])
    return ids


def test_ids_as_pack_ids() -> None:
    rng = random.Random(7)
    cases = [_ids(rng) for _ in range(5000)] + [[""], ["1"], ["12", "12"], ["a"], ["9" * 9, "0" * 9], ["99" * 6, "99" * 6],
                                               ["sku-1\n", "sku-2\n"], ["1" * 300 + "5", "1" * 300 + "6"]]
    for ids in cases:
        out = BytesWriter()
        packed = pack_ids(ids)
        assert write_ids(out, ids) == (packed is not None), ids
        assert out.getvalue() == (packed or b""), ids


def _float(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.1:
        return rng.choice([0.0, -0.0, 1.0, 0.5, 65504.0, 65519.99, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-14,
                           2.0**15, 32767.5, 1e-300])
    if kind < 0.5:
        return rng.uniform(-2.0, 2.0)
    return rng.choice([-1, 1]) * math.ldexp(rng.random(), rng.randint(-40, 40))


def test_half_as_struct() -> None:
    rng = random.Random(8)
    for _ in range(20000):
        x = _float(rng)
        try:
            expected = struct.pack("<e", x)
        except OverflowError:
            with pytest.raises(OverflowError):
                half_bits(x)
            continue
        assert struct.pack("<H", half_bits(x)) == expected, x
    for _ in range(3000):
        values = [_float(rng) for _ in range(rng.choice([0, 1, 3, 50]))]
        if values and rng.random() < 0.05:
            values[0] = rng.choice([math.inf, -math.inf, math.nan])
        out = BytesWriter()
        write_half(out, values)
        assert out.getvalue() == pack_half(values), values


def test_decimals_as_pack_decimal_exactly() -> None:
    rng = random.Random(9)
    for _ in range(5000):
        values = [rng.choice([rng.uniform(-4, 4), rng.uniform(-300000, 300000), round(rng.uniform(-3, 3), 4) + 0.00005,
                              math.nan]) for _ in range(rng.choice([0, 1, 5, 32]))]
        for code in ("h", "i"):
            out = BytesWriter()
            expected = pack_decimal_exactly(values, code)
            assert write_decimal_exactly(out, values, code == "h") == (expected is not None)
            assert out.getvalue() == (expected or b"")


def _list(rng: random.Random) -> CandidateList:
    items = _ids(rng)
    event_ts = rng.choice([1.7e9 + rng.random(), 0.0, -5.5, 0.0025, 0.0035, -0.0025, 1.7e9 + 0.0005, 1e13 + 0.5])
    return CandidateList(items, [_float(rng) for _ in items], event_ts=event_ts,
                         accepted_ms=rng.choice([0, 1_700_000_000_123]),
                         sources=rng.choice([[], ["s"] * len(items)]),
                         repeats=sorted(rng.sample(range(len(items)), min(3, len(items)))),
                         exclude=rng.choice([[], ["x1", "y"]]),
                         affinities=rng.choice([[], [("drama", 1.0), ("horror", 0.3333)], [("a", 5.123456)]]))


def test_lists_as_encode_candidates() -> None:
    rng = random.Random(10)
    for _ in range(3000):
        c = _list(rng)
        blob = write_list_3(c.items, c.scores, c.event_ts, c.accepted_ms, c.repeats, c.exclude, c.sources,
                            c.affinities, "candidate list")
        try:
            expected = encode_candidates(c, version=3)
        except ValueError:
            assert blob is None
            continue
        assert blob is None or blob == expected, c
        assert (blob is None) == (expected[0] != 3), c
        decode_candidates(expected)


def test_profiles_as_encode_profile() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        ids = _ids(rng)
        newest = rng.choice([1.7e9 + rng.random(), 100.0, 5e9, -1.0])
        recent = [(i, rng.choice([rng.uniform(0.1, 3), rng.uniform(-1, 1e6), 1.0]),
                   newest - rng.choice([0, rng.uniform(0, 100), rng.uniform(0, 1e6)])) for i in ids]
        total = tuple(rng.uniform(-2, 2) * rng.choice([1, 10]) for _ in range(rng.choice([0, 4, 32])))
        weight = rng.choice([0.0, 1.0, rng.uniform(0.1, 5)])
        affinities = rng.choice([[], [("shoes", 1.0), ("socks", 0.4)], [("a", 7.25), ("b", 3.3)]])
        mean = tuple(x / weight for x in total) if weight else total
        blob = write_profile_3("s1", recent, total, weight, affinities, "profile")
        try:
            expected = encode_profile("s1", recent, mean, affinities, version=3)
        except ValueError:  # out of the format's range: the writer declines, the old encoder says why
            assert blob is None
            continue
        assert blob is None or blob == expected, (recent, total, weight, affinities)
        assert blob is not None or expected[0] != 3 or min(ts for _, _, ts in recent) < 0, recent  # declines only so
        decode_profile(expected)
