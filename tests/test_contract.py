"""The event contract: every bad input is refused with the offending field named."""

from __future__ import annotations

import time

import pytest

from online.contract import (
    EventError,
    EventTypeWeights,
    RedisKeys,
    Settings,
    decode_candidates,
    decode_stream_fields,
    encode_candidates,
    parse_event,
    stream_fields,
)
from online.contract.candidates import CandidateList

NOW = 1_700_000_000.0
GOOD = {"user_id": "u1", "item_id": "i1", "type": "view", "ts": NOW - 5}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"user_id": None}, "user_id"),
        ({"item_id": None}, "item_id"),
        ({"item_id": ""}, "item_id"),
        ({"item_id": "x" * 1_000_000}, "item_id"),
        ({"item_id": ["a"]}, "item_id"),
        ({"item_id": "a\nb"}, "item_id"),
        ({"type": None}, "type"),
        ({"type": "teleport"}, "type"),
        ({"type": 3}, "type"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": NOW * 1000}, "ts"),
        ({"ts": 0}, "ts"),
        ({"ts": True}, "ts"),
        ({"ts": "2024-01-01T00:00:00"}, "ts"),
        ({"value": "five"}, "value"),
        ({"value": float("nan")}, "value"),
        ({"type": "rating"}, "value"),
        ({"context": "mobile"}, "context"),
        ({"context": {"device": ["ios"]}}, "context.device"),
        ({"context": {f"k{i}": 1 for i in range(17)}}, "context"),
        ({"itemId": "i1"}, "itemId"),
        ({"session_id": 12.5}, "session_id"),
    ],
)
def test_bad_event_names_the_field(patch: dict[str, object], field: str) -> None:
    obj = {**GOOD, **patch}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(EventError) as caught:
        parse_event(obj, now=NOW)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_not_an_object() -> None:
    with pytest.raises(EventError, match="event: must be a JSON object"):
        parse_event(["user_id"], now=NOW)


def test_good_event_round_trips_through_a_stream_entry() -> None:
    event = parse_event({**GOOD, "ts": "2023-11-14T22:13:15Z", "value": 3, "event_id": "e-1",
                         "context": {"device": "ios", "price": 9.5}}, now=NOW)
    assert event.ts == 1_699_999_995.0
    again = parse_event(decode_stream_fields(stream_fields(event)), now=NOW)
    assert again == event


def test_ts_defaults_to_now_and_integers_are_ids() -> None:
    event = parse_event({"user_id": 42, "item_id": 7, "type": "click"})
    assert (event.user_id, event.item_id) == ("42", "7")
    assert abs(event.ts - time.time()) < 5


def test_weights_are_configurable_and_new_types_accepted() -> None:
    weights = EventTypeWeights.from_spec("purchase=10,like=2", "0,10")
    assert weights.weights["purchase"] == 10.0
    event = parse_event({**GOOD, "type": "like"}, now=NOW, weights=weights)
    assert weights.weight_of(event) == 2.0
    assert weights.weight_of(parse_event({**GOOD, "type": "rating", "value": 10}, now=NOW, weights=weights)) == 4.0
    assert weights.weight_of(parse_event({**GOOD, "type": "rating", "value": 0}, now=NOW, weights=weights)) == -4.0
    with pytest.raises(ValueError, match="not a number"):
        EventTypeWeights.from_spec("view=lots")
    with pytest.raises(ValueError, match="min must be below max"):
        EventTypeWeights.from_spec("", "5,1")


def test_flat_stream_entries_are_accepted() -> None:
    obj = decode_stream_fields({b"user_id": b"u", b"item_id": b"i", b"type": b"view", b"ts": b"1700000000"})
    assert parse_event(obj, now=NOW).ts == NOW


def test_stream_partitioning_is_stable_and_spread() -> None:
    keys = RedisKeys("lr", 8)
    parts = {keys.partition_of(f"user-{i}") for i in range(1000)}
    assert parts == set(range(8))
    assert keys.stream_for_user("alice") == RedisKeys("lr", 8).stream_for_user("alice")


def test_keys_read_together_share_a_hash_tag() -> None:
    keys = RedisKeys("lr", 4)
    tag = keys.user_recs("bob").split("{")[1].split("}")[0]
    assert tag in keys.user_profile("bob")
    with pytest.raises(ValueError, match="namespace"):
        RedisKeys("l{r}", 4)


def test_candidate_encoding_round_trip_and_errors() -> None:
    blob = encode_candidates(CandidateList(["a"], [1.0], event_ts=NOW, accepted_ms=5))
    assert decode_candidates(blob).items == ["a"]
    with pytest.raises(ValueError, match="unknown encoding version"):
        decode_candidates(b'{"v": 99}')
    with pytest.raises(ValueError, match="differ in length"):
        CandidateList(["a"], [])


def test_settings_name_the_bad_variable() -> None:
    with pytest.raises(ValueError, match="LIVERECO_PARTITIONS=0"):
        Settings.from_env({"LIVERECO_PARTITIONS": "0"})
    with pytest.raises(ValueError, match="LIVERECO_COVISIT_HALF_LIFE_S='soon'"):
        Settings.from_env({"LIVERECO_COVISIT_HALF_LIFE_S": "soon"})
    with pytest.raises(ValueError, match="event weight"):
        Settings.from_env({"LIVERECO_EVENT_WEIGHTS": "view"})
    with pytest.raises(ValueError, match=r"LIVERECO_RANKER_LEARNING_RATE=-0\.1: must not be negative"):
        Settings.from_env({"LIVERECO_RANKER_LEARNING_RATE": "-0.1"})
    with pytest.raises(ValueError, match="LIVERECO_RANKER_SHARDS=0: must be positive"):
        Settings.from_env({"LIVERECO_RANKER_SHARDS": "0"})
    with pytest.raises(ValueError, match=r"LIVERECO_GC_INTERVAL_S=-1\.0: must not be negative"):
        Settings.from_env({"LIVERECO_GC_INTERVAL_S": "-1"})
    with pytest.raises(ValueError, match="LIVERECO_GC_INTERVAL_S='hourly': expected a number"):
        Settings.from_env({"LIVERECO_GC_INTERVAL_S": "hourly"})
    with pytest.raises(ValueError, match="LIVERECO_HTTP_SERVER='nginx': expected livereco or uvicorn"):
        Settings.from_env({"LIVERECO_HTTP_SERVER": "nginx"})
    with pytest.raises(ValueError, match="LIVERECO_SERVED_CACHE_LISTS"):
        Settings.from_env({"LIVERECO_SERVED_CACHE_LISTS": "lots"})
    with pytest.raises(ValueError, match="LIVERECO_BLOB_VERSION=1: expected 2 or 3"):
        Settings.from_env({"LIVERECO_BLOB_VERSION": "1"})
    assert Settings.from_env({"LIVERECO_RANKER_LEARNING_RATE": "0"}).ranker_learning_rate == 0.0  # no learning


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"device": True}, "context.device: must be a string or a number, not bool"),
        ({"device": None}, "context.device: must be a string or a number, not NoneType"),
        ({"price": float("inf")}, "context.price: must be finite"),
        ({"device": "x" * 1000}, "context.device: is 1000 characters long; the limit is 256"),
        ({"device": "a\u2028b"}, "context.device: contains a control character U+2028 at position 1"),
        ({"dev\x85": "ios"}, "context: key 'dev\\x85' contains a control character U+0085 at position 3"),
    ],
)
def test_context_values_are_refused_with_the_same_messages(context: dict[str, object], message: str) -> None:
    """The type tests and the printable fast path (``unsafe_character``) refuse what they refused, word for word."""
    with pytest.raises(EventError) as caught:
        parse_event({**GOOD, "context": context}, now=NOW)
    assert str(caught.value) == message


def test_other_mappings_and_unprintable_safe_strings_parse_as_dicts_do() -> None:
    """A non-dict mapping (read through a copy) and strings that are unprintable yet safe (a no-break space, an
    emoji joiner) give the same event as a plain dict; a str subclass id is taken as its text."""
    from types import MappingProxyType

    class Name(str):
        pass

    obj = {**GOOD, "user_id": Name("ann"), "context": {"label": "a\u00a0b", "emoji": "👩🏽\u200d💻", "n": 3}}
    event = parse_event(obj, now=NOW)
    assert event.context == {"label": "a\u00a0b", "emoji": "👩🏽\u200d💻", "n": 3.0} and event.user_id == "ann"
    proxied = parse_event(MappingProxyType({**obj, "context": MappingProxyType(obj["context"])}), now=NOW)
    assert proxied == event
