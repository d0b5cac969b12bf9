"""The pieces of the version-2 blobs (candidate lists and profiles): framing, strings, compact floats.

A version-2 blob is one version byte (``0x02``) and a zlib stream (with its
Adler-32 check, so a corrupt blob fails instead of decoding to garbage). The
stream holds fixed-size numbers first (:mod:`struct`, little-endian) and all
strings last, joined by ``\\n`` (ids are printable: :func:`~online.contract.parse_event`
refuses control characters), so decoding is a few C calls whatever the length.

Scores (:func:`pack_half`) are float16, scaled by a power of two when the
largest magnitude is outside ``[1, 2**15)`` (then into ``[2**14, 2**15)``;
the scale is exact and keeps large scores from overflowing). Every value of
at least ``2**-14`` (6e-5) times the largest magnitude keeps 11 significant
bits, a relative error of at most ``2**-11`` (about 0.05 %, better than 3
significant digits); smaller ones are kept to ``2**-24`` times it, and
infinities and NaN stay what they are. The common case (largest score in
``[1, 2**15)``, as the flow's lists have) decodes without a multiply.

Profile numbers (:func:`pack_decimal`) are fixed-point decimals: integers
with a number of decimal places (4 unless the largest magnitude needs fewer
to fit), so they decode to the same rounded values version 1 wrote.

Examples
--------
>>> values = [12345.678, 1.0, -0.5, 0.0, 3e-9]
>>> decoded, end = unpack_half(pack_half(values), 0, len(values))
>>> [float(f"{v:.3g}") for v in decoded], end
([12300.0, 1.0, -0.5, 0.0, 0.0], 12)
>>> all(abs(d - v) <= abs(v) * 2**-11 for d, v in zip(decoded[:3], values))
True
>>> [f"{v:.4g}" for v in unpack_half(pack_half([1e30, 3e25, 1e-30]), 0, 3)[0]]
['1e+30', '3e+25', '0']
>>> unpack_decimal(pack_decimal([1.23456, -0.1, 3.0], "h"), 0, 3, "h")
([1.2346, -0.1, 3.0], 7)
>>> unpack_decimal(pack_decimal([123456.7, float("nan")], "h"), 0, 2, "h")   # fewer places to fit; NaN as 0
([123460.0, 0.0], 5)
>>> unpack_decimal(pack_decimal([1e300, -1.0], "h"), 0, 2, "h")[0]
[3.2767e+34, 0.0]
>>> split_strings(join_strings(["a", "", "b"], "list"), 3, "list")
['a', '', 'b']
>>> unframe(frame(b"payload"), "list")
b'payload'
>>> unframe(b"\\x02garbage", "list")
Traceback (most recent call last):
...
ValueError: list: corrupt or truncated version-2 blob (zlib: Error -3 while decompressing data: incorrect header check)
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from typing import Final

__all__ = ["VERSION_2", "binary_version", "frame", "join_strings", "pack_decimal", "pack_half", "split_strings", "unframe",
           "unpack_decimal", "unpack_half", "version_2_body"]

VERSION_2 = 2
_PREFIX = bytes([VERSION_2])
ZLIB_LEVEL = 1
"""Measured on full lists (benchmarks.memory): level 6 saves 11 B of Redis per user and 8 B per item, and
costs ~3.5 µs more per blob to write (~16 instead of ~12.5 µs to compress a user's list); level 9 saves
nothing more. The flow writes every list and profile it changes, so it is level 1."""
ZLIB_WBITS = 11
ZLIB_MEM_LEVEL = 4
"""A 2 KiB window and a 2k-entry hash instead of zlib's 32 KiB and 32k: a blob's body is well under 2 KiB,
so nothing is lost, and setting up the compressor (zeroing its hash table) cost more than compressing a
list. Measured under valgrind on a 50-candidate list's body (624 bytes): ~145k instructions per blob
against ~198k for ``zlib.compress(body, 1)``, 436 bytes either way. Any zlib reader decodes it (the
stream header names its window)."""
_SEPARATOR = "\n"
_HALF_TOP = 2.0**15
_MAX_SHIFT = 1000
"""Values below ``2**-985`` scale to zero rather than overflow the scale factor."""


def frame(body: bytes) -> bytes:
    """The version byte and ``body`` compressed (see :data:`ZLIB_WBITS`)."""
    packer = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, ZLIB_WBITS, ZLIB_MEM_LEVEL)
    return _PREFIX + packer.compress(body) + packer.flush()


def unframe(blob: bytes, what: str) -> bytes:
    """The body of a version-2 blob (its first byte already checked); ``ValueError`` if the stream is bad."""
    try:
        return zlib.decompress(memoryview(blob)[1:])
    except zlib.error as exc:
        raise ValueError(f"{what}: corrupt or truncated version-2 blob (zlib: {exc})") from None


def binary_version(blob: bytes | str) -> int | None:
    """The version byte of a binary blob, or ``None`` for text (a version-1 JSON blob).

    Binary versions are below ``0x09``: no JSON text starts with one of them.
    """
    if isinstance(blob, str) or not blob or blob[0] >= 0x09:
        return None
    return blob[0]


def version_2_body(blob: bytes | str, what: str) -> bytes | None:
    """The decompressed body of a version-2 blob, ``None`` for a version-1 (JSON) one.

    ``ValueError`` naming ``what`` for an unknown binary version or a bad zlib stream.

    >>> version_2_body(frame(b"body"), "list"), version_2_body(b'{"v": 1}', "list")
    (b'body', None)
    """
    version = binary_version(blob)
    if version is None:
        return None
    if version != VERSION_2:
        raise ValueError(f"{what}: unknown encoding version {version}")
    return unframe(blob, what)  # type: ignore[arg-type]  # binary_version returns None for str


def join_strings(strings: Sequence[str], what: str) -> bytes:
    """``strings`` as one UTF-8 text; ``ValueError`` if one holds the separator (a newline)."""
    text = _SEPARATOR.join(strings)
    if strings and text.count(_SEPARATOR) != len(strings) - 1:
        raise ValueError(f"{what}: an id contains a newline, which the encoding cannot hold")
    return text.encode()


def split_strings(raw: bytes, count: int, what: str) -> list[str]:
    """The ``count`` strings of :func:`join_strings`; ``ValueError`` if there are not exactly that many."""
    if not count:
        if raw:
            raise ValueError(f"{what}: corrupt version-2 blob (text where no strings were expected)")
        return []
    try:
        strings = raw.decode().split(_SEPARATOR)
    except UnicodeDecodeError:
        raise ValueError(f"{what}: corrupt version-2 blob (ids are not UTF-8)") from None
    if len(strings) != count:
        raise ValueError(f"{what}: corrupt version-2 blob ({len(strings)} ids where the header says {count})")
    return strings


def pack_half(values: Sequence[float]) -> bytes:
    """A power-of-two shift (int16) and ``values`` times ``2**shift`` as float16 (see the module docstring)."""
    top = max(map(abs, values), default=0.0)
    if not math.isfinite(top):  # inf, or a NaN max() kept: scale by the finite ones (inf and NaN pack as such)
        top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if not top or 1.0 <= top < _HALF_TOP:
        return struct.pack(f"<h{len(values)}e", 0, *values)
    shift = min(15 - math.frexp(top)[1], _MAX_SHIFT)
    scale = 2.0 ** shift
    return struct.pack(f"<h{len(values)}e", shift, *[v * scale for v in values])


def unpack_half(body: bytes, offset: int, count: int) -> tuple[list[float], int]:
    """``count`` floats of :func:`pack_half` at ``offset``, and the offset after them."""
    shift, *values = struct.unpack_from(f"<h{count}e", body, offset)
    if shift:
        factor = 2.0 ** -shift
        values = [v * factor for v in values]
    return values, offset + 2 + 2 * count


_INT_LIMITS = {"h": 2**15 - 1, "i": 2**31 - 1}
_INT_SIZES = {"h": 2, "i": 4}


_ROUNDER: Final = 6755399441055744.0
"""``1.5 * 2**52``: adding it to a float of magnitude below ``2**51`` and taking it away again leaves the
nearest integer, halves to even, as ``round`` gives (IEEE 754 rounds every addition to nearest, ties to even)."""


def _rounded(values: Sequence[float], scale: float, limit: float) -> list[int] | None:
    """``[round(v * scale) for v in values]`` if every product is within ``±limit`` (``None`` otherwise: NaN too).

    A quarter of what the comprehension and a separate ``max`` cost compiled, for the same integers.
    """
    rounded: list[int] = []
    for v in values:
        x: float = v * scale
        if not -limit <= x <= limit:
            return None
        rounded.append(int((x + _ROUNDER) - _ROUNDER))
    return rounded


def pack_decimal(values: Sequence[float], code: str, places: int = 4) -> bytes:
    """Decimal places (int8) and ``values`` as integers of ``code`` (``h``, ``i``) with that many places.

    ``places`` unless the largest magnitude needs fewer to fit (down to -30);
    non-finite values (no stage makes them) are written as 0, and magnitudes
    beyond ``2**31 * 10**30`` as the largest integer, rather than failing the write.
    """
    scale, limit = 10**places, _INT_LIMITS[code]
    if 0 <= places <= 15:  # 10**places exact as a float: v * scale is the product the rest would round
        rounded = _rounded(values, float(scale), float(limit))
        if rounded is not None:
            return struct.pack(f"<b{len(values)}{code}", places, *rounded)
    # Tried only when the largest magnitude fits (with a rounding's margin): a failed pack raises, and an
    # exception costs compiled code ~25 µs, as much as a profile's encoding (affinity scores are often > 3.3).
    if max(map(abs, values), default=0.0) * scale <= limit + 2:
        try:
            return struct.pack(f"<b{len(values)}{code}", places, *[round(v * scale) for v in values])
        except (struct.error, ValueError, OverflowError):  # out of range, NaN, infinite: the slow way
            pass
    finite = [v if math.isfinite(v) else 0.0 for v in values]
    top = max(map(abs, finite), default=0.0)
    while places > -30 and round(top * 10.0**places) > limit:
        places -= 1
    factor = 10**places if places >= 0 else 10.0**places
    return struct.pack(f"<b{len(values)}{code}", places, *[max(-limit, min(limit, round(v * factor))) for v in finite])


def unpack_decimal(body: bytes, offset: int, count: int, code: str) -> tuple[list[float], int]:
    """``count`` numbers of :func:`pack_decimal` at ``offset``, and the offset after them."""
    places, *integers = struct.unpack_from(f"<b{count}{code}", body, offset)
    end = offset + 1 + count * _INT_SIZES[code]
    if places >= 0:
        divisor = float(10**places)  # exact; int / float divides as int / int would, faster
        return [i / divisor for i in integers], end
    factor = 10**-places
    return [float(i * factor) for i in integers], end
