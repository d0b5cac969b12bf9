"""Version-3 lists and profiles written in one compiled call: the same bytes as :mod:`online.contract.packing`'s pieces.

:func:`~online.contract.candidates.encode_candidates` and :func:`~online.contract.profile.encode_profile` built a
blob from pieces: ``struct.pack`` with a tuple of every number, an ``int()`` of a sliced string per packed id,
the pieces joined. Here one :class:`librt.strings.BytesWriter` takes every byte, the ids' digits are read as
code points (``ord(s[i])``, a native read in compiled code) and every number is written by a native call
(mypyc compiles these to C; :mod:`librt` is mypyc's runtime library, which pure Python imports as a plain
extension module). A user's list went from ~82k to ~27k instructions, a profile from ~69k to ~21k, an item's
similar list from ~54k to ~15k (callgrind of ``benchmarks.sink_replay``; docs/performance.md).

Each writer covers the common case and returns ``None`` for anything else (ids that do not pack, a non-finite
score, a number out of its field's range): the caller then encodes the old way, whose bytes (or error) these
are not allowed to differ from (``tests/test_blob_writer.py`` compares them on random and edge cases).

>>> from online.contract.packing import pack_half, pack_ids
>>> out = BytesWriter()
>>> write_ids(out, ["sku-00628", "sku-00004"]), out.getvalue() == pack_ids(["sku-00628", "sku-00004"])
(True, True)
>>> write_ids(BytesWriter(), ["sku-1", "sku-22"]), write_ids(BytesWriter(), ["a1b"])
(False, False)
>>> out = BytesWriter(); write_half(out, [0.9, 0.4, -3.0e-7]); out.getvalue() == pack_half([0.9, 0.4, -3.0e-7])
True
>>> [f"{half_bits(x):04x}" for x in (1.0, -2.0, 65504.0, 2.0**-24, 0.0)]
['3c00', 'c000', '7bff', '0001', '0000']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from librt.strings import BytesWriter, write_i16_le, write_i32_le, write_i64_le
from mypy_extensions import i16, i32, i64, u8

from online.contract.packing import join_strings, pack_decimal, pack_half

__all__ = ["BytesWriter", "half_bits", "write_decimal_exactly", "write_half", "write_ids", "write_list_3",
           "write_profile_3"]

_MAX_DIGITS: Final = 9
_HALF_TOP: Final = 32768.0
_I64_LIMIT: Final = 9.2e18
"""Below ``2**63``: an event time in ms beyond it is left to ``struct`` (which refuses it)."""


def write_ids(out: BytesWriter, ids: list[str]) -> bool:
    """Append :func:`~online.contract.packing.pack_ids`'s bytes for ``ids``; ``False`` (nothing written) if it gives ``None``.

    As there: the ids must be of one length, the prefix is the one all share (which is that of the least and the
    greatest, as ``pack_ids`` finds it) but one character short of them at most, ASCII; the rest are ASCII
    digits, at most 9, and the greatest number sets the size. The prefix is found by comparing code points with
    the first id's (no string comparisons), and each id's number read once.
    """
    n: i64 = len(ids)
    if n == 0:
        out.append(u8(0))
        out.append(u8(0))
        return True
    first = ids[0]
    length: i64 = len(first)
    if length == 0:
        return False
    cut: i64 = length - 1
    for item in ids:  # the prefix every id shares with the first, and the lengths
        if len(item) != length:
            return False
        k: i64 = 0
        while k < cut and ord(item[k]) == ord(first[k]):
            k += 1
        cut = k
    if length - cut > _MAX_DIGITS or cut > 255:
        return False
    k = 0
    while k < cut:
        if ord(first[k]) >= 128:
            return False
        k += 1
    numbers: list[int] = []
    top: i64 = 0
    for item in ids:
        value: i64 = 0
        k = cut
        while k < length:
            c: i64 = ord(item[k])
            if c < 48 or c > 57:
                return False
            value = value * 10 + (c - 48)
            k += 1
        numbers.append(value)
        if value > top:
            top = value
    size: i64 = 2 if top < 0x10000 else 3 if top < 0x1000000 else 4
    shared: i64 = 0  # the value of the shared digits moved from the prefix into the numbers
    scale: i64 = 1
    k = cut
    while k < length:
        scale *= 10
        k += 1
    while cut > 0 and length - cut < _MAX_DIGITS:
        c = ord(first[cut - 1])
        if c < 48 or c > 57:
            break
        wider: i64 = (c - 48) * scale + shared + top
        if wider >> (8 * size) != 0:
            break
        shared = wider - top
        scale *= 10
        cut -= 1
    out.append(u8(cut))
    k = 0
    while k < cut:
        out.append(u8(ord(first[k])))
        k += 1
    out.append(u8((length - cut) | (size - 2) << 4))
    for number in numbers:
        value = number + shared
        if size == 2:
            _write_u16(out, value)
        elif size == 3:
            _write_u16(out, value & 0xFFFF)
            out.append(u8(value >> 16))
        else:
            _write_u32(out, value)
    return True


def _write_u16(out: BytesWriter, value: i64) -> None:
    """``value`` (0 to 65535) as a little-endian uint16: the same bytes as int16 of its two's complement."""
    write_i16_le(out, i16(value - 0x10000 if value >= 0x8000 else value))


def _write_u32(out: BytesWriter, value: i64) -> None:
    """``value`` (0 to 2**32 - 1) as a little-endian uint32."""
    write_i32_le(out, i32(value - 0x100000000 if value >= 0x80000000 else value))


def half_bits(x: float) -> i64:
    """The float16 bits ``struct.pack("<e", x)`` writes for a finite ``x`` (``OverflowError`` as it raises).

    CPython's ``PyFloat_Pack2``: round half to even, subnormals below ``2**-14``, zero below ``2**-25``.
    """
    sign: i64 = 0x8000 if x < 0.0 or (x == 0.0 and math.copysign(1.0, x) < 0.0) else 0
    a = abs(x)
    if a == 0.0:
        return sign
    if a >= 65520.0:
        raise OverflowError("float too large to pack with e format")
    m = a
    e: i64 = 0
    while m >= 2.0:
        m *= 0.5
        e += 1
    while m < 1.0:
        m *= 2.0
        e -= 1
    if e < -25:
        return sign
    exponent: i64
    if e < -14:
        f = a * 16777216.0  # subnormal: a / 2**-24
        exponent = 0
    else:
        f = (m - 1.0) * 1024.0
        exponent = e + 15
    bits: i64 = int(f)
    rest = f - float(bits)
    if rest > 0.5 or (rest == 0.5 and bits & 1):
        bits += 1
        if bits == 1024:
            bits = 0
            exponent += 1
    return sign | exponent << 10 | bits


def write_half(out: BytesWriter, values: Sequence[float]) -> None:
    """Append :func:`~online.contract.packing.pack_half`'s bytes for ``values``."""
    top = 0.0
    for v in values:
        a = abs(v)
        if a - a != 0.0:  # inf or NaN: the struct way, which scales by the finite ones
            out.write(pack_half(values))
            return
        if a > top:
            top = a
    if top == 0.0 or 1.0 <= top < _HALF_TOP:
        write_i16_le(out, 0)
        for v in values:
            _write_u16(out, half_bits(v))
        return
    shift: i64 = min(15 - math.frexp(top)[1], 1000)
    scale = math.pow(2.0, float(shift))
    write_i16_le(out, i16(shift))
    for v in values:
        _write_u16(out, half_bits(v * scale))


_ROUNDER: Final = 6755399441055744.0


def write_decimal_exactly(out: BytesWriter, values: Sequence[float], short: bool, places: i64 = 4,
                          divisor: float = 1.0) -> bool:
    """Append :func:`~online.contract.packing.pack_decimal_exactly`'s bytes for ``values`` (each divided by
    ``divisor`` first), int16 if ``short`` else int32; ``False`` (nothing written) where it gives ``None``."""
    if places < 0 or places > 15:
        return False
    scale = 1.0
    k: i64 = 0
    while k < places:
        scale *= 10.0
        k += 1
    limit = 32767.0 if short else 2147483647.0
    for v in values:
        x = (v / divisor if divisor != 1.0 else v) * scale
        if not -limit <= x <= limit:
            return False
    out.append(u8(places))
    for v in values:
        x = (v / divisor if divisor != 1.0 else v) * scale
        rounded: i64 = int((x + _ROUNDER) - _ROUNDER)
        if short:
            write_i16_le(out, i16(rounded))
        else:
            write_i32_le(out, i32(rounded))
    return True


def _round(x: float) -> i64:
    """``round(x)`` (halves to even) without a call of it: exact below ``2**51`` (as :data:`_ROUNDER` says)."""
    if -2.0**51 < x < 2.0**51:
        return int((x + _ROUNDER) - _ROUNDER)
    return round(x)


def _write_decimal(out: BytesWriter, values: Sequence[float], places: i64) -> None:
    """``pack_decimal(values, "h", places)``'s bytes."""
    if not write_decimal_exactly(out, values, True, places):
        out.write(pack_decimal(list(values), "h", places))


def _with_length(out: BytesWriter) -> bytes:
    """The blob, its second byte set to the low byte of its length (:func:`~online.contract.packing.frame_3`)."""
    out[1] = u8(len(out) & 0xFF)
    return out.getvalue()


def write_list_3(items: list[str], scores: list[float], event_ts: float, accepted_ms: int,
                 repeats: list[int], exclude: list[str], sources: list[str],
                 affinities: Sequence[tuple[str, float]], what: str) -> bytes | None:
    """A version-3 candidate list (:func:`~online.contract.candidates.encode_candidates`'s bytes), ``None`` where
    that would be version 2 or an error."""
    n: i64 = len(items)
    if n != len(scores) or n > 0xFFFF or len(repeats) > 0xFFFF or len(exclude) > 0xFFFF or len(affinities) > 0xFFFF:
        return None
    if sources and len(sources) != n:
        return None
    event_ms_f = event_ts * 1000.0
    if not -_I64_LIMIT < event_ms_f < _I64_LIMIT or not -(2**63) <= accepted_ms < 2**63:
        return None
    for r in repeats:
        if not 0 <= r <= 0xFFFF:
            return None
    out = BytesWriter()
    out.append(u8(3))
    out.append(u8(0))
    write_i64_le(out, _round(event_ms_f))
    write_i64_le(out, accepted_ms)
    _write_u16(out, n)
    _write_u16(out, len(repeats))
    _write_u16(out, len(exclude))
    out.append(u8((1 if sources else 0) | (2 if affinities else 0)))
    write_half(out, scores)
    for r in repeats:
        _write_u16(out, r)
    if affinities:
        _write_u16(out, len(affinities))
        _write_decimal(out, [score for _, score in affinities], 4)
    if not write_ids(out, items):
        return None
    others = exclude + sources if exclude or sources else []
    if affinities:
        others = others + [category for category, _ in affinities]
    out.write(join_strings(others, what))
    return _with_length(out)


def write_profile_3(session_id: str, recent: list[tuple[str, float, float]], embedding: Sequence[float],
                    embedding_weight: float, affinities: Sequence[tuple[str, float]], what: str) -> bytes | None:
    """A version-3 profile (:func:`~online.contract.profile.encode_profile`'s bytes) of the session embedding
    ``embedding`` divided by ``embedding_weight`` (as :func:`~online.item_embedding.weighted_mean`; 0: as it is),
    ``None`` where that would be version 2 or an error."""
    n: i64 = len(recent)
    if n >= 0x4000 or len(embedding) > 0xFFFF or len(affinities) > 0xFFFF:
        return None
    ids = [item for item, _, _ in recent]
    weights = [w for _, w, _ in recent]
    newest: i64 = 0
    since_first = True
    seconds: list[int] = []
    for _, _, ts in recent:
        if not 0.0 <= ts < 4294967296.0:
            return None
        second: i64 = int(ts)
        if not seconds:
            newest = second
        elif not 0 <= newest - second <= 0xFFFF:
            since_first = False
        seconds.append(second)
    out = BytesWriter()
    out.append(u8(3))
    out.append(u8(0))
    count_at = len(out)
    _write_u16(out, n)
    _write_u16(out, len(embedding))
    _write_u16(out, len(affinities))
    flags: i64 = 0
    if since_first and n:
        flags |= 0x8000
        _write_u32(out, newest)
        for k in range(1, n):
            _write_u16(out, newest - seconds[k])
    else:
        for second in seconds:
            _write_u32(out, second)
    if write_decimal_exactly(out, weights, True):
        flags |= 0x4000
    elif not write_decimal_exactly(out, weights, False):
        out.write(pack_decimal(weights, "i", 4))
    if embedding_weight == 0.0 or not write_decimal_exactly(out, embedding, True, 4, embedding_weight):
        if embedding_weight == 0.0:
            _write_decimal(out, embedding, 4)
        else:
            out.write(pack_decimal([x / embedding_weight for x in embedding], "h", 4))
    _write_decimal(out, [score for _, score in affinities], 4)
    if not write_ids(out, ids):
        return None
    out.write(join_strings([session_id, *[category for category, _ in affinities]], what))
    count = n | flags
    out[count_at] = u8(count & 0xFF)
    out[count_at + 1] = u8(count >> 8)
    return _with_length(out)
