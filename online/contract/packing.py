"""The pieces of the version-2 and -3 blobs (candidate lists and profiles): framing, strings, ids, compact floats.

A version-2 blob is one version byte (``0x02``) and a zlib stream (with its
Adler-32 check, so a corrupt blob fails instead of decoding to garbage). The
stream holds fixed-size numbers first (:mod:`struct`, little-endian) and all
strings last, joined by ``\\n`` (ids are printable: :func:`~online.contract.parse_event`
refuses control characters), so decoding is a few C calls whatever the length.

A version-3 blob is the version byte ``0x03``, a length byte (:func:`frame_3`),
and a body as version 2's but not compressed, its item ids packed as numbers (:func:`pack_ids`): a shared
prefix and the fixed-width decimal digits after it, as uint16 or uint32. zlib
cost ~65k instructions a blob (its Huffman trees are built at every flush,
however short the input), three times what the rest of a list's encoding
costs; the ids were most of what it saved. A blob whose ids do not have that
shape (``sku-00042``, ``214536502`` have it; ``a1b2``, ids of different
lengths do not) is written as version 2.

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

__all__ = ["VERSION_2", "VERSION_3", "binary_body", "binary_version", "frame", "frame_3", "join_strings", "pack_decimal",
           "pack_decimal_exactly", "pack_half", "pack_ids", "split_strings", "unframe", "unpack_decimal", "unpack_half", "unpack_ids"]

VERSION_2 = 2
VERSION_3 = 3
_PREFIX = bytes([VERSION_2])
_VERSION_3_PREFIX = bytes([VERSION_3])
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


def frame_3(body: bytes) -> bytes:
    """The version byte ``0x03``, the low byte of the blob's length, and ``body`` as it is.

    The length byte makes a blob cut short by fewer than 256 bytes an error rather than a list whose last
    string is shorter. There is no checksum (version 2's came with zlib): Redis keeps bytes as written.
    """
    return _VERSION_3_PREFIX + bytes(((len(body) + 2) & 0xFF,)) + body


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


def binary_body(blob: bytes | str, what: str) -> tuple[int, bytes] | None:
    """The version and body of a version-2 (decompressed) or -3 blob, ``None`` for a version-1 (JSON) one.

    ``ValueError`` naming ``what`` for an unknown binary version or a bad zlib stream.

    >>> binary_body(frame(b"body"), "list"), binary_body(frame_3(b"body"), "list")
    ((2, b'body'), (3, b'body'))
    >>> binary_body(frame_3(b"body")[:-1], "list")
    Traceback (most recent call last):
    ...
    ValueError: list: corrupt or truncated version-3 blob (not the length its second byte says)
    """
    version = binary_version(blob)
    if version is None:
        return None
    if version == VERSION_3:
        if len(blob) < 2 or blob[1] != len(blob) & 0xFF:
            raise ValueError(f"{what}: corrupt or truncated version-3 blob (not the length its second byte says)")
        return VERSION_3, blob[2:]  # type: ignore[return-value]  # binary_version returns None for str
    if version != VERSION_2:
        raise ValueError(f"{what}: unknown encoding version {version}")
    return VERSION_2, unframe(blob, what)  # type: ignore[arg-type]


_MAX_DIGITS: Final = 9
"""Up to 9 digits a number (below 2**32); ids whose digits differ further left do not pack."""
_SIZES: Final = (2, 3, 4)
"""Bytes a number, by the size code in bits 4-5 of the width byte: uint16, uint24, uint32 (little-endian)."""


def pack_ids(ids: Sequence[str]) -> bytes | None:
    """``ids`` as a shared prefix and fixed-width decimal numbers, or ``None`` if they are not all shaped so.

    Layout: the prefix's length in bytes (uint8) and its UTF-8 bytes; a byte holding the width in digits
    (bits 0-3) and the numbers' size (bits 4-5: :data:`_SIZES`, the smallest that holds the largest);
    then the numbers. Every id must be ASCII, the same length, the prefix (the ids' longest common prefix, but
    at least one digit short of an id, less the shared digits the numbers can take without growing) followed by
    ASCII digits; leading zeros are kept by the width.

    >>> pack_ids(["sku-00628", "sku-00004"]).hex(" ")
    '04 73 6b 75 2d 05 74 02 04 00'
    >>> unpack_ids(pack_ids(["sku-00628", "sku-00004"]), 0, 2, "list")
    (['sku-00628', 'sku-00004'], 10)
    >>> unpack_ids(pack_ids(["214716935", "214832672"]), 0, 2, "list")   # "2" and 14716935, 14832672 as uint24
    (['214716935', '214832672'], 9)
    >>> pack_ids(["sku-1", "sku-22"]), pack_ids(["a1b"]), pack_ids(["x\\u0661"])   # lengths differ, no digit at the end, not ASCII
    (None, None, None)
    >>> unpack_ids(pack_ids(["1234567890123", "1234567890000"]), 0, 2, "list")[0]
    ['1234567890123', '1234567890000']
    """
    if not ids:
        return b"\x00\x00"
    first, last = min(ids), max(ids)
    length = len(first)
    cut = 0
    limit = min(len(last), length - 1)
    while cut < limit and first[cut] == last[cut]:  # the common prefix of all ids: that of the least and greatest
        cut += 1
    digits = last[cut:]
    if length - cut > _MAX_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    top = int(digits)  # the largest number: ids of one length and prefix sort as their numbers do
    size = 2 if top < 0x10000 else 3 if top < 0x1000000 else 4
    while cut and length - cut < _MAX_DIGITS and "0" <= last[cut - 1] <= "9" and int(last[cut - 1:]) >> 8 * size == 0:
        cut -= 1  # a shared digit moved from the prefix into the numbers costs nothing while they keep their size
    if not "".join(ids).isascii():  # once for all: isdigit() takes other scripts' digits too
        return None
    numbers: list[int] = []
    for item in ids:
        tail = item[cut:]
        if len(item) != length or not tail.isdigit():
            return None
        numbers.append(int(tail))
    head = first[:cut].encode()
    if len(head) > 255:
        return None
    width = bytes((len(head),)) + head + bytes((length - cut | (size - 2) << 4,))
    if size == 2:
        return width + struct.pack(f"<{len(numbers)}H", *numbers)
    wide = struct.pack(f"<{len(numbers)}I", *numbers)
    if size == 3:
        return width + b"".join([wide[k:k + 3] for k in range(0, len(wide), 4)])
    return width + wide


def unpack_ids(body: bytes, offset: int, count: int, what: str) -> tuple[list[str], int]:
    """``count`` ids of :func:`pack_ids` at ``offset``, and the offset after them; ``ValueError`` if corrupt."""
    try:
        size = body[offset]
        prefix = body[offset + 1:offset + 1 + size].decode()
        flags = body[offset + 1 + size]
        start = offset + 2 + size
        width = _SIZES[flags >> 4]
        end = start + count * width
        if end > len(body):
            raise IndexError(end)
        if width == 2:
            numbers = struct.unpack_from(f"<{count}H", body, start)
        elif width == 4:
            numbers = struct.unpack_from(f"<{count}I", body, start)
        else:
            numbers = struct.unpack(f"<{count}I", b"".join([body[k:k + 3] + b"\x00" for k in range(start, end, 3)]))
    except (IndexError, struct.error, UnicodeDecodeError):
        raise ValueError(f"{what}: corrupt version-3 blob (its packed ids are cut short)") from None
    digits = flags & 0x0F
    if count and (not digits or max(numbers) >= 10**digits):
        raise ValueError(f"{what}: corrupt version-3 blob (ids wider than their {digits} digits)")
    return [prefix + str(number).zfill(digits) for number in numbers], end


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


def pack_decimal_exactly(values: Sequence[float], code: str, places: int = 4) -> bytes | None:
    """:func:`pack_decimal`'s bytes if every value fits ``code`` with ``places`` places (``None`` otherwise).

    >>> pack_decimal_exactly([1.5, -2.0], "h") == pack_decimal([1.5, -2.0], "h"), pack_decimal_exactly([3.3], "h")
    (True, None)
    """
    # 0-15 places: 10**places is exact as a float, so v * scale is the product round() would be given
    rounded = _rounded(values, float(10**places), float(_INT_LIMITS[code])) if 0 <= places <= 15 else None
    return None if rounded is None else struct.pack(f"<b{len(values)}{code}", places, *rounded)


def pack_decimal(values: Sequence[float], code: str, places: int = 4) -> bytes:
    """Decimal places (int8) and ``values`` as integers of ``code`` (``h``, ``i``) with that many places.

    ``places`` unless the largest magnitude needs fewer to fit (down to -30);
    non-finite values (no stage makes them) are written as 0, and magnitudes
    beyond ``2**31 * 10**30`` as the largest integer, rather than failing the write.
    """
    exact = pack_decimal_exactly(values, code, places)
    if exact is not None:
        return exact
    scale, limit = 10**places, _INT_LIMITS[code]
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
