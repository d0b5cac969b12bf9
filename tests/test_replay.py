"""``livereco replay``: logs in several layouts land in the partitioned streams, bad lines are reported."""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pytest
import redis

from flows.replay import add_arguments, iter_log_events, replay, run
from online.contract import Event, RedisKeys, Settings, decode_stream_fields, parse_event

RSC15 = "SessionId\tItemId\tTime\n3\t214716935\t1396437466.94\n3\t214832672\t1396438212.318\n6\t214701242\t1396796300.848\n"


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="livereco replay")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def stream_events(client: redis.Redis, keys: RedisKeys) -> list[tuple[int, Event]]:
    """Every event in the streams with the partition it sits in, validated like the flow does."""
    out = []
    for partition, stream in enumerate(keys.streams()):
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
        for _id, fields in entries:
            out.append((partition, parse_event(decode_stream_fields(fields), now=time.time())))
    return out


def total_len(client: redis.Redis, keys: RedisKeys) -> int:
    return sum(int(client.xlen(k)) for k in keys.streams())


def test_rsc15_tsv_lands_in_user_partitions(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "clicks.tsv"
    log.write_text(RSC15 + "".join(f"{s}\t{900 + s}\t{1396800000 + s}.5\n" for s in range(10, 40)))
    assert run(parse_args(str(log), "--no-progress"), settings) == 0
    assert "replayed 33 events (0 rejected)" in capsys.readouterr().out
    assert total_len(redis_client, keys) == 33
    events = stream_events(redis_client, keys)
    assert {p for p, _ in events} == {0, 1}  # 2 partitions, both used
    for partition, event in events:
        assert partition == keys.partition_of(event.user_id)
        assert event.session_id == event.user_id
        assert event.type == "view"
    first = next(e for _, e in events if e.item_id == "214716935")
    assert first == Event("3", "214716935", "view", 1396437466.94, session_id="3")


def test_movietweetings_dat_is_ratings(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "ratings.dat"
    log.write_text("1::1074638::7::1365029107\n1::1853728::8::1366576639\n2::0104257::0::1364690142\n")
    report = replay(log, settings, redis_client, err=io.StringIO())
    assert (report.read, report.written, report.rejected) == (3, 3, 0)
    assert report.value_range == (0.0, 8.0)
    events = sorted((e.user_id, e.item_id, e.type, e.value, e.ts) for _, e in stream_events(redis_client, keys))
    assert events == [
        ("1", "1074638", "rating", 7.0, 1365029107.0),
        ("1", "1853728", "rating", 8.0, 1366576639.0),
        ("2", "0104257", "rating", 0.0, 1364690142.0),  # the leading zero of the id is kept
    ]


def test_a_movies_file_beside_the_ratings_gives_their_events_categories_as_eval_does(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "ratings.dat"
    log.write_text("1::1074638::7::1365029107\n1::1853728::8::1366576639\n2::0104257::0::1364690142\n")
    (tmp_path / "movies.dat").write_text("1074638::A (2013)::Drama|Horror\n0104257::B (1992)::\nnot a movie\n")
    assert run(parse_args(str(log), "--no-progress", "--genres", "combined"), settings) == 0
    err = capsys.readouterr().err
    assert "movies.dat: combined genre as the category of 1 movies' events" in err
    assert f"{tmp_path / 'movies.dat'}:3: expected movie_id::title::genre|genre" in err  # the bad line, named
    categories = {e.item_id: e.context.get("category") for _, e in stream_events(redis_client, keys)}
    assert categories == {"1074638": "Drama|Horror", "1853728": None, "0104257": None}  # no genres, not listed
    for stream in keys.streams():
        redis_client.delete(stream)
    assert run(parse_args(str(log), "--no-progress", "--genres", "none"), settings) == 0
    assert all("category" not in e.context for _, e in stream_events(redis_client, keys))


def test_jsonl_events_with_renamed_keys(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "events.ndjson"
    log.write_text(
        '{"user": "u1", "item_id": "a", "type": "purchase", "ts": "2024-01-02T03:04:05Z"}\n'
        "\n"
        '{"user": "u2", "item_id": "b", "ts": 1700000000, "context": {"device": "ios"}}\n'
    )
    report = replay(log, settings, redis_client, columns="user_id=user", err=io.StringIO())
    assert (report.written, report.rejected) == (2, 0)
    events = {e.user_id: e for _, e in stream_events(redis_client, keys)}
    assert events["u1"].type == "purchase" and events["u1"].ts == 1704164645.0
    assert events["u2"].type == "view" and events["u2"].context == {"device": "ios"}


def test_csv_with_explicit_column_mapping(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "orders.csv"
    log.write_text(
        "when,customer,product,Stars,Category\n"
        '1700000000,c1,p1,4,"shoes, running"\n'
        "1700000100,c2,p2,2,hats\n"
    )
    args = parse_args(
        str(log), "--no-progress", "--value-type", "rating",
        "--columns", "user_id=customer,item_id=product,ts=when,value=Stars,context.category=Category",
    )
    assert run(args, settings) == 0
    events = {e.user_id: e for _, e in stream_events(redis_client, keys)}
    assert events["c1"] == Event("c1", "p1", "rating", 1700000000.0, value=4.0, context={"category": "shoes, running"})
    assert events["c2"].value == 2.0


def test_headerless_file_by_position_and_sniffed_format(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "yoochoose-clicks.dat"  # the original rsc15 file: comma separated despite .dat
    log.write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,0\n")
    report = replay(log, settings, redis_client, columns="user_id,ts,item_id,_", err=io.StringIO())
    assert (report.written, report.rejected) == (2, 0)
    assert sorted(e.ts for _, e in stream_events(redis_client, keys)) == [1396867869.277, 1396868049.868]


def test_bad_lines_are_reported_with_line_numbers_and_good_ones_still_land(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "mixed.csv"
    log.write_bytes(
        b"user_id,item_id,type,ts\n"
        b"u1,i1,view,1700000000\n"  # 2 good
        b"u2,,view,1700000000\n"  # 3 missing item
        b"u3,i3,view,yesterday\n"  # 4 non-numeric ts
        b"u4,i4,teleport,1700000000\n"  # 5 unknown type
        b"u5,i\xff\xfe5,view,1700000000\n"  # 6 invalid UTF-8
        b"u6,i6,view\n"  # 7 too few fields
        b"\n"  # 8 blank: skipped, not a row
        b"u9,i9,click,1700000001\n"  # 9 good
    )
    err = io.StringIO()
    report = replay(log, settings, redis_client, err=err)
    assert (report.read, report.written, report.rejected) == (7, 2, 5)
    assert [r.line for r in report.rejections] == [3, 4, 5, 6, 7]
    assert report.rejections[0].message == "item_id: must not be empty"
    assert report.rejections[1].message.startswith("ts: 'yesterday' is neither epoch seconds nor ISO 8601")
    assert report.rejections[2].message.startswith("type: unknown event type 'teleport'")
    assert report.rejections[3].message == "line: not valid UTF-8 (byte 0xff at column 5)"
    assert report.rejections[4].message == "line: has 3 fields; expected 4"
    printed = err.getvalue()
    for line in (3, 4, 5, 6, 7):
        assert f"{log}:{line}: rejected: " in printed
    assert sorted(e.user_id for _, e in stream_events(redis_client, keys)) == ["u1", "u9"]


def test_strict_stops_at_the_first_bad_line(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "strict.tsv"
    log.write_text(RSC15 + "7\t\t1396796546.976\n8\t99\t1396796546.976\n")
    assert run(parse_args(str(log), "--strict", "--no-progress"), settings) == 2
    captured = capsys.readouterr()
    assert f"stopped at {log}:5 (--strict): item_id: must not be empty" in captured.err
    assert total_len(redis_client, keys) == 3  # the lines before the bad one, not the one after


def test_limit_counts_data_lines(tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis) -> None:
    log = tmp_path / "many.tsv"
    log.write_text("SessionId\tItemId\tTime\n" + "".join(f"{i}\t{i}\t1396796546\n" for i in range(100)))
    report = replay(log, settings, redis_client, limit=25, batch=10)
    assert (report.read, report.written) == (25, 25)
    assert total_len(redis_client, keys) == 25
    mixed = tmp_path / "mixed.tsv"
    mixed.write_bytes(b"SessionId\tItemId\tTime\n1\t1\t1396796546\n2\t2\n3\t\xff\t1396796546\n4\t4\t1396796546\n")
    report = replay(mixed, settings, redis_client, limit=2, err=io.StringIO())
    assert (report.read, report.written, report.rejected) == (2, 1, 1)  # bad lines count toward the limit


def test_rate_limit_holds_the_average_rate(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "rate.tsv"
    log.write_text("SessionId\tItemId\tTime\n" + "".join(f"{i}\t{i}\t1396796546\n" for i in range(200)))
    started = time.monotonic()
    report = replay(log, settings, redis_client, rate=1000)
    elapsed = time.monotonic() - started
    assert report.written == 200
    assert elapsed >= 0.15


def test_time_shift_now_moves_the_first_event_to_now(
    tmp_path: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    log = tmp_path / "shift.tsv"
    log.write_text(
        "SessionId\tItemId\tTime\n"
        "3\t1\t1396437466.94\n"
        "3\t2\t1396438212.318\n"
        "4\t3\t1396400000\n"  # before the first event: in the past once shifted, fine
        "5\t4\t1396900000\n"  # five days after the first event: in the future once shifted
    )
    err = io.StringIO()
    before = time.time()
    report = replay(log, settings, redis_client, time_shift="now", err=err)
    assert (report.written, report.rejected) == (3, 1)
    assert f"{log}:5: rejected: ts: shifted by --time-shift now" in err.getvalue()
    ts = {e.item_id: e.ts for _, e in stream_events(redis_client, keys)}
    assert before - 1 <= ts["1"] <= time.time() + 1
    assert ts["2"] - ts["1"] == pytest.approx(1396438212.318 - 1396437466.94, abs=1e-3)
    assert ts["1"] - ts["3"] == pytest.approx(1396437466.94 - 1396400000, abs=1e-3)


def test_missing_file_and_bad_mapping_exit_2(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.tsv"
    assert run(parse_args(str(missing)), settings) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
    log = tmp_path / "clicks.tsv"
    log.write_text(RSC15)
    assert run(parse_args(str(log), "--columns", "user_id=Session,item_id=ItemId"), settings) == 2
    assert "'Session', not a column of the header" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(str(log), "--columns", "user=SessionId,item_id=ItemId")


def test_iter_log_events_numbers_lines_and_skips_bom_and_blanks(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"  # no telling extension: sniffed as TSV
    log.write_bytes(b"\xef\xbb\xbfuser_id\titem_id\tts\tignored\n\nu\ti\t1700000000\tx\n")
    assert list(iter_log_events(log)) == [(3, {"user_id": "u", "item_id": "i", "ts": "1700000000", "type": "view"})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "u", "item_id": "i"}\n{"user_id": \n')
    errors: list[tuple[int, str]] = []
    rows = list(iter_log_events(bad, on_error=lambda line, e: errors.append((line, e.field))))
    assert [line for line, _ in rows] == [1] and errors == [(2, "line")]


def test_shared_logs_replay_without_rejections(
    shared_data: Path, settings: Settings, keys: RedisKeys, redis_client: redis.Redis
) -> None:
    for name in ("rsc15-100k/train.tsv", "movietweetings-100k/ratings.dat"):
        args = parse_args(str(shared_data / name), "--limit", "2000", "--no-progress")
        before = total_len(redis_client, keys)
        report = replay(
            args.file, settings, redis_client, limit=args.limit, columns=args.columns, default_type=args.type,
            err=io.StringIO(),
        )
        assert (report.read, report.written, report.rejected) == (2000, 2000, 0), name
        assert total_len(redis_client, keys) - before == 2000
