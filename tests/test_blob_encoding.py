"""The version-2 and -3 list and profile blobs: round trips, precision, versions 1 and 2 still read, bad blobs named.

The Redis tests write through the real sink and read raw bytes back, so what
is checked is what a server finds in Redis.
"""

from __future__ import annotations

import math
import random
import struct
import zlib

import pytest
import redis

from benchmarks.memory_workload import full_item_writes, full_user_writes
from flows.redis_sink import ItemSimilarWrite, RedisSink, SinkOptions, UserListWrite
from online.contract import (
    CandidateList,
    Profile,
    RedisKeys,
    Settings,
    decode_candidates,
    decode_profile,
    encode_candidates,
    encode_profile,
)
from online.contract.packing import frame, pack_decimal, pack_half, unpack_half

NOW = 1_700_000_000.0


def full_list(seed: int = 1, n: int = 50) -> CandidateList:
    rng = random.Random(seed)
    scores = sorted((rng.lognormvariate(0.0, 1.0) for _ in range(n)), reverse=True)
    return CandidateList([f"sku-{rng.randrange(10**6):06d}" for _ in range(n)], scores, event_ts=NOW + 0.123,
                         accepted_ms=int(NOW * 1000) + 456, repeats=[1, 7], exclude=["sku-000001", "sku-004242"])


def assert_close(decoded: list[float], original: list[float]) -> None:
    """Within float16's half unit in the last place: better than 3 significant digits."""
    for got, want in zip(decoded, original, strict=True):
        assert abs(got - want) <= abs(want) * 2**-11, (got, want)
        assert float(f"{got:.3g}") == pytest.approx(float(f"{want:.3g}"), rel=1e-2)


def test_a_full_list_round_trips_in_a_third_of_the_bytes() -> None:
    original = full_list()  # random 6-digit ids: less to compress than a catalog's
    blob = encode_candidates(original)
    decoded = decode_candidates(blob)
    assert blob[0] == 2 and len(blob) < len(encode_candidates(original, version=1)) / 2.5
    assert decoded.items == original.items
    assert_close(decoded.scores, original.scores)
    assert decoded.event_ts == NOW + 0.123 and decoded.accepted_ms == original.accepted_ms
    assert decoded.repeats == [1, 7] and decoded.exclude == original.exclude and decoded.sources == []


@pytest.mark.parametrize("scores", [
    [1e12, 5e11, 1.0],            # beyond float16's range: scaled down
    [3e-7, 1e-7, 0.0],            # below it: scaled up
    [2.5, -1.0, 0.0, -0.0, 1e-9],  # negative, zero, a tail kept to 2**-24 of the top
    [0.0, 0.0],
])
def test_scores_of_any_magnitude_keep_11_significant_bits(scores: list[float]) -> None:
    decoded = decode_candidates(encode_candidates(CandidateList([f"i{k}" for k in range(len(scores))], scores))).scores
    top = max(map(abs, scores))
    for got, want in zip(decoded, scores, strict=True):
        assert abs(got - want) <= max(abs(want) * 2**-11, top * 2**-24), (got, want)


def test_non_finite_scores_stay_what_they_are() -> None:
    decoded, _ = unpack_half(pack_half([math.inf, 2.0, -math.inf]), 0, 3)
    assert decoded == [math.inf, 2.0, -math.inf]
    nan_first, _ = unpack_half(pack_half([math.nan, 70000.0]), 0, 2)
    assert math.isnan(nan_first[0]) and nan_first[1] == pytest.approx(70000.0, rel=2**-11)


@pytest.mark.parametrize("candidates", [
    CandidateList([], []),
    CandidateList([], [], exclude=["x"]),
    CandidateList([""], [1.0]),
    CandidateList(["é", "日本", "a b"], [3.0, 2.0, 1.0], sources=["covisit", "trending", "covisit"], exclude=["z"]),
])
def test_edge_lists_round_trip(candidates: CandidateList) -> None:
    decoded = decode_candidates(encode_candidates(candidates))
    assert (decoded.items, decoded.sources, decoded.exclude, decoded.repeats) == (
        candidates.items, candidates.sources, candidates.exclude, candidates.repeats)
    assert decoded.scores == candidates.scores  # small integers are exact


def test_version_1_lists_from_an_older_flow_are_read() -> None:
    written_by_an_old_flow = b'{"v":1,"i":["a","b"],"s":[0.9,0.123457],"t":1700000000.5,"a":7,"r":[1],"x":["z"]}'
    decoded = decode_candidates(written_by_an_old_flow)
    assert decoded == CandidateList(["a", "b"], [0.9, 0.123457], 1700000000.5, 7, [], [1], ["z"])
    original = full_list()
    assert decode_candidates(encode_candidates(original, version=1)).items == original.items


def corrupt(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes([blob[middle] ^ 0x5A]) + blob[middle + 1:]


@pytest.mark.parametrize("decode", [decode_candidates, decode_profile])
def test_bad_blobs_are_a_value_error_naming_the_problem(decode: object) -> None:
    assert callable(decode)
    what = "candidate list" if decode is decode_candidates else "profile"
    good = encode_candidates(full_list()) if decode is decode_candidates else encode_profile("s", [("i", 1.0, NOW)])
    cases = [
        (b"\x04" + good[1:], "unknown encoding version 4"),
        (b"\x02", "corrupt or truncated version-2 blob"),
        (good[:-5], "corrupt or truncated"),
        (corrupt(good), "corrupt"),
        (b"\x02" + zlib.compress(b"\x01\x00"), "truncated version-2 blob"),
        (b"not json", "not valid JSON"),
        (b'{"v": 9}' if decode is decode_candidates else b"[1, 2]",
         "unknown encoding version 9" if decode is decode_candidates else "not a JSON object"),
    ]
    for blob, message in cases:
        with pytest.raises(ValueError, match=f"^{what}: .*{message}"):
            decode(blob)


def test_header_and_strings_that_disagree_are_refused() -> None:
    header = struct.pack("<qqHHHB", 0, 0, 2, 0, 0, 0)
    with pytest.raises(ValueError, match=r"candidate list: corrupt version-2 blob \(3 ids where the header says 2\)"):
        decode_candidates(frame(header + pack_half([1.0, 0.5]) + b"a\nb\nc"))
    with pytest.raises(ValueError, match="not UTF-8"):
        decode_candidates(frame(header + pack_half([1.0, 0.5]) + b"a\n\xff"))
    with pytest.raises(ValueError, match="text where no strings were expected"):
        decode_candidates(frame(struct.pack("<qqHHHB", 0, 0, 0, 0, 0, 0) + pack_half([]) + b"junk"))
    with pytest.raises(ValueError, match="truncated"):
        decode_candidates(frame(header + pack_half([1.0])))


def test_what_cannot_be_encoded_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="an id contains a newline"):
        encode_candidates(CandidateList(["a\nb"], [1.0]))
    with pytest.raises(ValueError, match="cannot encode version 4"):
        encode_candidates(CandidateList(["a"], [1.0]), version=4)
    with pytest.raises(ValueError, match="cannot encode version 2"):
        encode_candidates(CandidateList(["a"], [1.0], repeats=[-1]))
    with pytest.raises(ValueError, match="profile: an id contains a newline"):
        encode_profile("s\n1", [])


def test_a_profile_round_trips_as_version_1_wrote_it_but_whole_seconds() -> None:
    rng = random.Random(3)
    recent = [(f"sku-{k}", rng.choice([1.0, 3.0, 0.25, -3.0, 1.23456]), NOW - 60 * k + 0.75) for k in range(20)]
    embedding = [rng.uniform(-1.0, 1.0) for _ in range(32)]
    affinities = [("shoes", 1.0), ("socks", 0.41234), ("hats", 0.00004)]
    version_1 = decode_profile(encode_profile("s1", recent, embedding, affinities, version=1))
    decoded = decode_profile(encode_profile("s1", recent, embedding, affinities))
    assert decoded.session_id == "s1"
    assert decoded.recent == [(item, weight, float(math.floor(ts))) for item, weight, ts in version_1.recent]
    assert decoded.session_embedding == version_1.session_embedding
    assert decoded.affinities == version_1.affinities == [("shoes", 1.0), ("socks", 0.4123), ("hats", 0.0)]
    assert len(encode_profile("s1", recent, embedding, affinities)) < len(encode_profile(
        "s1", recent, embedding, affinities, version=1)) / 3


def test_profile_numbers_out_of_the_usual_range_are_kept_with_fewer_places() -> None:
    decoded = decode_profile(encode_profile("s", [("i", 1234567.891234, NOW)], [5.123456, math.nan, 0.5], []))
    assert decoded.recent[0][1] == 1234567.891  # 3 places fit an int32
    assert decoded.session_embedding == [5.123, 0.0, 0.5]  # 3 places fit an int16; NaN (no stage makes it) as 0


def test_profile_decimals_are_the_integers_round_gives() -> None:
    """pack_decimal rounds by adding and taking away 1.5 * 2**52: the bytes must be those of round(), ties to even."""
    rng = random.Random(5)
    cases = [[rng.uniform(-3.3, 3.3) for _ in range(32)] for _ in range(3000)]
    cases += [[rng.randrange(-32767, 32768) / 10_000 + rng.choice([0.0, 0.00005, -0.00005]) for _ in range(8)]
              for _ in range(3000)]  # halves after scaling, where round() goes to even
    cases += [[k + 0.5 for k in range(-20, 20)], [2.5e-5, -2.5e-5, 1.5e-4, 3.27675, -3.27675, 3.2767, -0.0], [],
              [rng.uniform(-214748.3647, 214748.3647) for _ in range(20)]]
    for values in cases:
        for code, limit in (("h", 2**15 - 1), ("i", 2**31 - 1)):
            integers = [round(v * 10_000) for v in values]
            if all(-limit <= i <= limit for i in integers):
                assert pack_decimal(values, code) == struct.pack(f"<b{len(values)}{code}", 4, *integers), values


@pytest.mark.parametrize("style", ["sku", "rsc15"])
def test_version_3_reads_as_version_2_in_fewer_bytes(style: str) -> None:
    """What a server decodes from a version-3 blob is what it decoded from version 2, in no more bytes (Redis memory)."""
    users, items = list(full_user_writes(300, style=style)), list(full_item_writes(300, style=style))
    for user in users:
        for encode, decode in ((user.recs_blob, decode_candidates), (user.profile_blob, decode_profile)):
            new, old = encode(3), encode(2)
            assert new[0] == 3 and decode(new) == decode(old)  # type: ignore[operator]
            assert len(new) <= len(old), (style, new, old)
    for item in items:
        assert decode_candidates(item.blob(3)) == decode_candidates(item.blob(2))
        assert len(item.blob(3)) <= len(item.blob(2))
    sizes = {version: sum(len(u.recs_blob(version)) + len(u.profile_blob(version)) for u in users)
             for version in (2, 3)}
    assert sizes[3] < 0.85 * sizes[2], sizes


def test_version_3_falls_back_to_version_2_for_ids_it_cannot_pack() -> None:
    for ids in (["sku-1", "sku-22"], ["a1", "b2"], ["x7", "y"], ["abc"], ["sku-\u0661\u0662"], ["\u00e9-01", "\u00e9-02"]):
        candidates = CandidateList(ids, [1.0] * len(ids), event_ts=NOW, exclude=["z"])
        blob = encode_candidates(candidates, version=3)
        assert blob[0] == 2 and decode_candidates(blob) == decode_candidates(encode_candidates(candidates))
        profile = encode_profile("s", [(i, 1.0, NOW) for i in ids], version=3)
        assert profile[0] == 2 and decode_profile(profile).recent == [(i, 1.0, NOW) for i in ids]
    shaped = CandidateList(["sku-01", "sku-99", "sku-00"], [1.0, 0.5, 0.25], sources=["a", "b", "c"],
                           affinities=[("shoes", 1.0)], repeats=[2], exclude=["x y", ""])
    assert encode_candidates(shaped, version=3)[0] == 3
    assert decode_candidates(encode_candidates(shaped, version=3)) == decode_candidates(encode_candidates(shaped))
    far = [("i01", 1.0, NOW), ("i02", 2.0, NOW - 86_400), ("i03", 3.0, NOW + 5)]  # not all within 18 h before the first
    assert decode_profile(encode_profile("s", far, version=3)).recent == far
    for weights in ([1.0, -3.2767, 0.00005], [3.2768, 1.0], [1.23456, 250_000.5]):  # int16, then int32, then 3 places
        recent = [(f"i{k:02d}", w, NOW - k) for k, w in enumerate(weights)]
        short, long = encode_profile("s", recent, version=3), encode_profile("s", recent, version=2)
        assert short[0] == 3 and decode_profile(short) == decode_profile(long), weights
    empty = encode_profile("s", [], [0.5], version=3)
    assert empty[0] == 3 and decode_profile(empty) == Profile("s", [], [0.5], [])
    assert decode_candidates(encode_candidates(CandidateList([], []), version=3)) == CandidateList([], [])


@pytest.mark.parametrize("decode", [decode_candidates, decode_profile])
def test_bad_version_3_blobs_are_a_value_error(decode: object) -> None:
    assert callable(decode)
    what = "candidate list" if decode is decode_candidates else "profile"
    good = (encode_candidates(full_list(), version=3) if decode is decode_candidates
            else encode_profile("s", [("sku-01", 1.0, NOW), ("sku-02", 1.0, NOW - 5)], version=3))
    assert good[0] == 3
    for cut in range(max(1, len(good) - 255), len(good)):  # cut short by fewer than 256 bytes: always refused
        try:
            decoded = decode(good[:cut])
        except ValueError as exc:
            assert str(exc).startswith(f"{what}: "), exc
        else:
            raise AssertionError(f"{cut} of {len(good)} bytes decoded: {decoded}")


def test_version_1_profiles_from_an_older_flow_are_read() -> None:
    old = b'{"session_id":"s9","recent":[["a",2.0,1700000000.25]],"session_embedding":[0.1],"affinities":[["c",1.0]]}'
    assert decode_profile(old) == Profile("s9", [("a", 2.0, 1700000000.25)], [0.1], [("c", 1.0)])
    assert decode_profile(b'{"session_id":"s9","recent":[]}') == Profile("s9")  # before embeddings and affinities
    with pytest.raises(ValueError, match="profile: malformed version-1 blob"):
        decode_profile(b'{"session_id":"s9","recent":[["a",2.0]]}')


@pytest.mark.parametrize("version", [3, 2])
def test_the_sink_writes_the_configured_version_that_decodes_to_what_the_flow_meant(
        version: int, redis_url: str, keys: RedisKeys, settings: Settings, redis_client: redis.Redis) -> None:
    """Version 3 by default; ``LIVERECO_BLOB_VERSION=2`` while servers of an older release still read the lists."""
    original = full_list()
    user = UserListWrite("u1", list(zip(original.items, original.scores, strict=True)), original.event_ts,
                         original.accepted_ms, "s1", [("sku-1", 3.0, NOW)], repeats=original.repeats,
                         exclude=original.exclude, session_embedding=((0.5, -0.25), 2.0), affinities=[("shoes", 1.0)])
    item = ItemSimilarWrite("sku-1", [("sku-2", 1.0), ("sku-3", 0.3)], NOW)
    settings = Settings.from_env({"LIVERECO_BLOB_VERSION": str(version)}) if version != 3 else settings
    options = SinkOptions(keys, settings.user_ttl_s, settings.user_ttl_s, settings.trending_size,
                          settings.dead_letter_maxlen, settings.blob_version)
    partition = RedisSink(redis_url, options).build("test", 0, 1)
    try:
        partition.write_batch([user, item])
    finally:
        partition.close()
    recs, profile, similar = (redis_client.get(k) for k in (keys.user_recs("u1"), keys.user_profile("u1"),
                                                            keys.item_similar("sku-1")))
    assert isinstance(recs, bytes) and isinstance(profile, bytes) and isinstance(similar, bytes)
    assert recs[0] == profile[0] == similar[0] == version
    decoded = decode_candidates(recs)
    assert decoded.items == original.items and decoded.exclude == original.exclude
    assert_close(decoded.scores, original.scores)
    assert decode_profile(profile) == Profile("s1", [("sku-1", 3.0, NOW)], [0.25, -0.125], [("shoes", 1.0)])
    assert decode_candidates(similar).items == ["sku-2", "sku-3"]
