"""The dataflow against a real Redis: source resume, sink, dead letters, de-duplication, 1 and 2 workers."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
import redis
from bytewax.testing import cluster_main, run_main

from flows.dataflow import build_flow
from flows.event_writer import EventWriter
from flows.redis_sink import UserListWrite
from flows.redis_source import RedisStreamSource
from flows.stages import NeighbourReply, Outcome, Touch, UserListLogic
from online.contract import Event, Profile, RedisKeys, Settings, decode_candidates, decode_profile

T0 = 1_700_000_000.0


def shop_events(users: int = 60) -> list[Event]:
    """Users browse three items of one of five 'bundles', in order."""
    events = []
    for u in range(users):
        bundle = u % 5
        for step in range(3):
            events.append(Event(f"u{u}", f"b{bundle}-i{step}", "view", T0 + u * 100 + step,
                                context={"category": f"c{bundle}"}))
    return events


def run_flow(settings: Settings, workers: int = 1) -> None:
    flow = build_flow(settings, stop_at_end=True)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)


def test_source_resumes_after_its_snapshot(redis_client: redis.Redis, settings: Settings, keys: RedisKeys) -> None:
    stream = keys.stream(0)
    ids = [redis_client.xadd(stream, {"e": f"{n}".encode()}).decode() for n in range(5)]
    source = RedisStreamSource(settings.redis_url, keys, read_count=2, stop_at_end=True)
    part = source.build_part("s", stream, None)
    first = part.next_batch()
    assert [e.entry_id for e in first] == ids[:2]
    assert part.snapshot() == ids[1]
    resumed = source.build_part("s", stream, part.snapshot())
    assert [e.entry_id for e in resumed.next_batch()] == ids[2:4]
    assert [e.entry_id for e in resumed.next_batch()] == ids[4:]
    with pytest.raises(StopIteration):
        resumed.next_batch()
    live = RedisStreamSource(settings.redis_url, keys, poll_interval_s=0.05).build_part("s", stream, ids[-1])
    assert live.next_batch() == []  # idle: returns at once, asks to be woken later
    assert live.next_awake() is not None


def test_source_exports_its_lag_in_entries_and_seconds(redis_client: redis.Redis, settings: Settings,
                                                       keys: RedisKeys) -> None:
    from flows.metrics import STREAM_LAG_ENTRIES, STREAM_LAG_SECONDS, STREAM_LENGTH

    stream = keys.stream(0)
    for n in range(7):
        redis_client.xadd(stream, {"e": b"x"}, id=f"{1_000 + 500 * n}-0")  # entries half a second apart
    part = RedisStreamSource(settings.redis_url, keys, read_count=2).build_part("s", stream, None)
    part.next_batch()  # reads 2 of 7, then measures
    assert STREAM_LAG_ENTRIES.labels(stream)._value.get() == 5
    assert STREAM_LAG_SECONDS.labels(stream)._value.get() == pytest.approx(2.5)  # entry 1.5 s -> newest 4.0 s
    assert STREAM_LENGTH.labels(stream)._value.get() == 7
    part._lag_due = 0.0
    while part.next_batch():
        part._lag_due = 0.0
    assert STREAM_LAG_ENTRIES.labels(stream)._value.get() == 0
    assert STREAM_LAG_SECONDS.labels(stream)._value.get() == 0.0


@pytest.mark.parametrize("workers", [1, 2])
def test_events_become_lists_similar_items_and_trending(redis_client: redis.Redis, settings: Settings,
                                                       keys: RedisKeys, workers: int) -> None:
    EventWriter(redis_client, keys).append(shop_events())
    run_flow(settings, workers)

    recs = decode_candidates(redis_client.get(keys.user_recs("u7")))  # bundle 2, viewed i0, i1, i2
    assert set(recs.items) == {"b2-i0", "b2-i1", "b2-i2"}
    assert recs.accepted_ms > 0
    assert 0 < redis_client.ttl(keys.user_recs("u7")) <= settings.user_ttl_s

    similar = decode_candidates(redis_client.get(keys.item_similar("b3-i0")))
    assert similar.items[0] == "b3-i1"  # the item viewed right after it, most often
    assert set(similar.items) == {"b3-i1", "b3-i2"}

    assert redis_client.zcard(keys.trending()) == 15
    top_in_c4 = [m.decode() for m in redis_client.zrevrange(keys.trending("c4"), 0, -1)]
    assert sorted(top_in_c4) == ["b4-i0", "b4-i1", "b4-i2"]
    users_with_lists = sum(1 for u in range(60) if redis_client.exists(keys.user_recs(f"u{u}")))
    assert users_with_lists == 60


def test_malformed_entries_go_to_the_dead_letter_stream(redis_client: redis.Redis, settings: Settings,
                                                        keys: RedisKeys) -> None:
    stream = keys.stream(0)
    bad = [
        ({"e": b"{not json"}, "e"),
        ({"e": b'{"user_id":"u","type":"view"}'}, "item_id"),
        ({"e": b"\xff\xfe"}, "e"),
        ({"e": b'{"user_id":"u","item_id":"i","type":"view","ts":99999999999999}'}, "ts"),
        ({"user_id": b"u", "item_id": b"i", "type": b"warp"}, "type"),
    ]
    for fields, _ in bad:
        redis_client.xadd(stream, fields)
    EventWriter(redis_client, keys).append(shop_events(5))
    run_flow(settings)
    letters = redis_client.xrange(keys.dead_letter())
    assert [fields[b"field"].decode() for _, fields in letters] == [field for _, field in bad]
    assert all(fields[b"reason"] and fields[b"raw"] for _, fields in letters)
    assert letters[0][1][b"raw"] == b"e={not json"
    # and the flow kept going: every good user has a list
    assert all(redis_client.exists(keys.user_recs(f"u{u}")) for u in range(5))


def test_duplicate_event_ids_count_once(redis_client: redis.Redis, settings: Settings, keys: RedisKeys) -> None:
    writer = EventWriter(redis_client, keys)
    once = Event("u1", "a", "view", T0, event_id="same")
    writer.append([once, once, once, Event("u2", "b", "view", T0, event_id="other")])
    run_flow(settings)
    scores = dict(redis_client.zrange(keys.trending(), 0, -1, withscores=True))
    assert scores[b"a"] == pytest.approx(scores[b"b"])  # three copies of one event weigh as one


def test_seen_items_left_out_when_recent_weight_is_zero(redis_client: redis.Redis, settings: Settings,
                                                        keys: RedisKeys) -> None:
    # One partition read one entry at a time, so "partial" comes after the others: partitions are read
    # side by side, and the events of one source batch meet the item stage as if simultaneous.
    settings = dataclasses.replace(settings, recent_weight=0.0, partitions=1, read_count=1)
    events = [*shop_events(20), Event("partial", "b1-i0", "view", T0 + 9000), Event("partial", "b1-i1", "view", T0 + 9001)]
    EventWriter(redis_client, settings.keys).append(events)
    run_flow(settings)
    assert decode_candidates(redis_client.get(settings.keys.user_recs("partial"))).items == ["b1-i2"]


def test_the_ranker_learns_that_users_follow_the_crowd_and_publishes_its_weights(
        redis_client: redis.Redis, settings: Settings) -> None:
    # Every fan views an item of their own, then the blockbuster: nothing personal predicts it, trending does.
    settings = dataclasses.replace(settings, recent_weight=0.0, partitions=1, read_count=1, ranker_shards=1)
    fans = [e for u in range(40) for e in (Event(f"fan{u}", f"own{u}", "view", T0 + 10 * u),
                                            Event(f"fan{u}", "blockbuster", "view", T0 + 10 * u + 1))]
    EventWriter(redis_client, settings.keys).append(fans)
    run_flow(settings, workers=2)
    published = orjson.loads(redis_client.hget(settings.keys.ranker(), "shard0"))
    assert published["pairs"] > 0
    weights = published["weights"]
    assert weights["trending"] + weights["trending_rank"] > 0.0  # popularity learned to be worth following
    recs = decode_candidates(redis_client.get(settings.keys.user_recs("fan3")))
    assert set(recs.exclude) == {"own3", "blockbuster"}  # consumed items stay out, trending included


def _reply(seq: int, item: str, recent: list[str], neighbours: list[tuple[str, float]]) -> NeighbourReply:
    touch = Touch(item_id=item, user_id="u", entry_id=f"{seq}-0", seq=seq, weight=1.0, ts=T0 + seq,
                  accepted_ms=0, category=None, previous=[], session_id="s1",
                  recent=[(i, 1.0, T0 + seq) for i in recent], exclude=[])
    return NeighbourReply(item, neighbours, touch)


def _lists(settings: Settings, batches: list[list[NeighbourReply]]) -> tuple[list[str], int]:
    logic = UserListLogic(settings, None)
    out: list[object] = []
    for batch in batches:
        out.extend(logic.on_batch(batch)[0])
    written = [w for w in out if isinstance(w, UserListWrite)]
    return [item for item, _ in written[-1].ranked], sum(isinstance(w, Outcome) for w in out)


def test_user_lists_are_the_same_whether_replies_come_together_apart_or_out_of_order(settings: Settings) -> None:
    replies = [_reply(1, "a", ["a"], [("x", 1.0)]), _reply(2, "b", ["b", "a"], [("y", 1.0)]),
               _reply(3, "c", ["c", "b", "a"], [("z", 1.0)])]
    apart = _lists(settings, [[r] for r in replies])
    assert apart[1] == 2 and {"x", "y", "z"} <= set(apart[0])
    assert _lists(settings, [replies]) == apart  # one batch
    assert _lists(settings, [[replies[2]], [replies[0]], [replies[1]]]) == apart  # the third overtook the others


def test_profiles_carry_a_session_embedding_and_category_affinities(redis_client: redis.Redis, settings: Settings,
                                                                    keys: RedisKeys) -> None:
    from online.item_embedding import DIM, cosine

    EventWriter(redis_client, keys).append(shop_events())
    run_flow(settings)

    def profile(user: str) -> Profile:
        return decode_profile(redis_client.get(keys.user_profile(user)))  # type: ignore[arg-type]

    mine, same_bundle, other_bundle = profile("u7"), profile("u12"), profile("u8")  # bundles 2, 2, 3
    assert mine.affinities == [("c2", 1.0)]
    embedding = mine.session_embedding
    assert len(embedding) == DIM and any(embedding)
    # Sessions over the same items point the same way (item embeddings go on learning between u7 and u12);
    # sessions over other items do not.
    alike = cosine(embedding, same_bundle.session_embedding)
    unlike = cosine(embedding, other_bundle.session_embedding)
    assert alike > 0.7 and alike > unlike + 0.5, (alike, unlike)


def test_an_item_s_trending_updates_count_exactly_the_events_up_to_their_time(settings: Settings) -> None:
    """Users are keys of their own, so an item's touches can reach it out of event-time order. The ranker's
    replica applies updates in event time: each update must count the events up to its time, no later one
    (a leak of later popularity into earlier scores), and the replica must end at the item's full score (as Redis)."""
    from flows.redis_sink import TrendingWrite
    from flows.stages import ItemLogic, RankerLogic

    def touch(user: str, ts: float) -> Touch:
        return Touch(item_id="i", user_id=user, entry_id=f"{int(ts)}-0", seq=1, weight=1.0, ts=T0 + ts,
                     accepted_ms=0, category=None, previous=[], session_id="s1", recent=[("i", 1.0, T0 + ts)],
                     exclude=[])

    items = ItemLogic(settings, None, recoverable=False)
    writes = [w for w in items.on_batch([touch("late", 120.0), touch("early", 60.0)])[0] if isinstance(w, TrendingWrite)]
    one_view = items.config.popularity.add(None, 1.0, T0 + 60.0)
    assert [(w.ts, w.log_score) for w in writes] == [(T0 + 60.0, one_view), (T0 + 120.0, items.state.popularity)]
    ranker = RankerLogic(settings, None, recoverable=False)
    ranker.on_batch(list(writes))
    ranker._advance(T0 + 90.0)
    assert ranker.state.trending._scores["i"] == one_view  # at 90 s, the view at 120 s has not happened
    ranker._advance(float("inf"))
    assert ranker.state.trending._scores["i"] == items.state.popularity  # the full score, as Redis holds it
