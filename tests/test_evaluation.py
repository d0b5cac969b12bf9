"""The evaluation driver: protocol, baselines, and live metrics equal to offline ones for the same log."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from flows.cli import main
from flows.dataflow import build_flow
from flows.eval_data import protocol
from flows.evaluation import EvalData, evaluate_baseline, evaluate_livereco, flow_time_shift, load, tune
from flows.event_writer import EventWriter
from online.baselines import BPRMatrixFactorisation, ItemKNN, LastItemCoVisitation, MostPopular
from online.contract import Event, EventError, Settings, parse_event

T0 = 1_700_000_000.0


def session_log(sessions: int, seed: int = 3) -> list[tuple[str, str, float]]:
    """Sessions walk along one of six item chains: a next-item structure a model can learn."""
    rng = random.Random(seed)
    rows = []
    for s in range(sessions):
        chain = rng.randrange(6)
        start = rng.randrange(3)
        for step in range(rng.randint(2, 5)):
            rows.append((f"s{s}", f"c{chain}-{start + step}", T0 + s * 60 + step))
    return rows


def write_split(folder: Path, rows: list[tuple[str, str, float]], test_from: int) -> None:
    header = "SessionId\tItemId\tTime\n"
    train = [r for r in rows if int(r[0][1:]) < test_from]
    test = [r for r in rows if int(r[0][1:]) >= test_from]
    for name, part in (("train.tsv", train), ("test.tsv", test)):
        (folder / name).write_text(header + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in part))


def test_session_protocol_scores_every_test_click_after_the_first(tmp_path: Path) -> None:
    rows = session_log(200)
    write_split(tmp_path, rows, test_from=150)
    data = load(tmp_path, Settings.from_env({}))
    test_rows = [r for r in rows if int(r[0][1:]) >= 150]
    assert sum(data.scored) == len(test_rows) - len({r[0] for r in test_rows})
    assert not any(data.scored[: data.test_start])
    assert data.catalog == {r[1] for r in rows if int(r[0][1:]) < 150}


def test_livereco_learns_the_chains_and_beats_popularity(tmp_path: Path) -> None:
    write_split(tmp_path, session_log(400), test_from=300)
    settings = Settings.from_env({}, flow_metrics_port=0)
    data = load(tmp_path, settings)
    live, speed, ranker_weights = evaluate_livereco(data, settings)
    popular = evaluate_baseline(MostPopular(), data)
    covis = evaluate_baseline(LastItemCoVisitation(), data)
    assert live.predictions == popular.predictions == sum(data.scored)
    assert live.report()["HR@5"] > 0.9  # chains are deterministic: next item or a repeat
    assert live.report()["MRR@20"] > popular.report()["MRR@20"] + 0.2
    assert covis.report()["HR@5"] > 0.9
    assert speed > 0
    assert set(ranker_weights) == set(range(settings.ranker_shards))  # every shard learned and published
    assert all(w["personal_rank"] > 0.0 for w in ranker_weights.values())  # chains: the personal order is right
    frozen, _, _ = evaluate_livereco(data, settings, frozen=True)
    assert frozen.predictions == live.predictions


def test_frozen_baseline_follows_sessions_without_learning() -> None:
    events = [Event("a", "x", "view", T0), Event("a", "y", "view", T0 + 1),
              Event("b", "x", "view", T0 + 2), Event("b", "y", "view", T0 + 3), Event("b", "z", "view", T0 + 4)]
    data = EvalData("toy", events, test_start=2, scored=[False, False, False, True, True])
    frozen = evaluate_baseline(LastItemCoVisitation(), data, frozen=True)
    assert frozen.report()["HR@5"] == 0.5  # y after x was learned; z after y was not


def test_live_metrics_equal_offline_metrics_for_the_same_log(redis_client: redis.Redis, settings: Settings) -> None:
    settings = dataclasses.replace(settings, partitions=1)
    events = [Event(s, i, "view", t) for s, i, t in session_log(150)]
    users: set[str] = set()
    scored = []
    for e in events:
        scored.append(e.user_id in users)
        users.add(e.user_id)
    offline, _, _ = evaluate_livereco(EvalData("same", events, 0, scored), settings)

    def counters() -> tuple[float, float, float]:
        return (REGISTRY.get_sample_value("livereco_flow_prequential_predictions_total") or 0.0,
                REGISTRY.get_sample_value("livereco_flow_prequential_hits_total", {"k": "20"}) or 0.0,
                REGISTRY.get_sample_value("livereco_flow_prequential_reciprocal_rank_total", {"k": "20"}) or 0.0)

    before = counters()
    EventWriter(redis_client, settings.keys).append(events)
    run_main(build_flow(settings, stop_at_end=True))
    predictions, hits, reciprocal = (after - b for after, b in zip(counters(), before, strict=True))
    report = offline.report()
    assert predictions == offline.predictions == sum(scored)
    assert hits / predictions == pytest.approx(report["HR@20"], abs=1e-6)
    assert reciprocal / predictions == pytest.approx(report["MRR@20"], abs=1e-6)


def test_eval_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_split(tmp_path, session_log(120), test_from=100)
    assert main(["eval", str(tmp_path), "--mode", "streaming", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    models = {r["model"] for r in report["results"]}
    assert models == {"livereco", "most-popular", "decayed-popularity", "last-item-covisitation", "item-knn", "bpr-mf"}
    assert all(0.0 <= r["HR@20"] <= 1.0 for r in report["results"])


def test_eval_command_names_a_missing_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_bad_log_lines_are_counted_and_named_not_dropped_silently(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_split(tmp_path, session_log(60), test_from=50)
    with (tmp_path / "train.tsv").open("ab") as log:
        log.write(b"s999\t\tnot-a-time\n\xff\xfe\t1\t2\n")
    data = load(tmp_path, Settings.from_env({}))
    assert data.rejected == 2
    err = capsys.readouterr().err
    assert "2 log lines are not valid events" in err and "train.tsv:" in err


def test_eval_shows_progress_on_a_terminal_and_nothing_elsewhere(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from flows.evaluation import evaluate_baseline, evaluate_livereco, load
    from flows.progress import Progress
    from online.baselines import MostPopular

    write_split(tmp_path, session_log(120), test_from=100)
    settings = Settings.from_env({}, flow_metrics_port=0)
    data = load(tmp_path, settings)
    terminal = io.StringIO()
    evaluate_livereco(data, settings, progress=Progress(len(data.events), "livereco", stream=terminal,
                                                        interactive=True, every_s=0.0))
    evaluate_baseline(MostPopular(), data, progress=Progress(len(data.events), "pop", stream=terminal,
                                                             interactive=True, every_s=0.0))
    total = f"{len(data.events):,}"
    assert f"livereco: {total}/{total} events (100%)" in terminal.getvalue()
    assert f"pop: {total}/{total} events (100%)" in terminal.getvalue()
    # Under pytest stderr is not a terminal: the command's own progress stays silent.
    assert main(["eval", str(tmp_path), "--mode", "streaming", "--models", "livereco"]) == 0
    assert "events (" not in capsys.readouterr().err


def write_movietweetings(folder: Path, movies: bytes) -> None:
    """Four users rate three movies (one of them missing from ``movies``); ``movies`` is written as movies.dat."""
    ratings = [(u, m, 8, int(T0) + 60 * (3 * u + k)) for u in range(4) for k, m in enumerate(("0001", "0002", "0404"))]
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in ratings))
    (folder / "movies.dat").write_bytes(movies)


def test_movie_genres_beside_a_ratings_log_become_the_events_categories(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    write_movietweetings(tmp_path, b"0001::Noir (1950)::Drama|Film-Noir\r\n0002::Blank (2013)::\r\n")
    settings = Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"})
    data = load(tmp_path, settings)
    categories = {e.item_id: e.context.get("category") for e in data.events}
    assert categories == {"0001": "Drama", "0002": None, "0404": None}  # empty genres, unknown movie: no category
    assert data.categories == "movies.dat, first genre as category, for 1 of 3 rated movies (4 of 12 events)"
    rarest = {e.item_id: e.context.get("category") for e in load(tmp_path, settings, genres="rarest").events}
    assert rarest["0001"] == "Drama"  # Drama and Film-Noir are equally rare in this catalog: the first listed
    assert all("category" not in e.context for e in load(tmp_path, settings, genres="none").events)
    assert capsys.readouterr().err == ""


def test_a_bad_line_of_movies_dat_is_named_and_no_rating_is_lost(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_movietweetings(tmp_path, b"0001::Noir (1950)::Drama\nthis is not a movie\n0002::Laugh (1990)::Comedy\n"
                                   b"\xff\xfe::Bad (2000)::Drama\n")
    data = load(tmp_path, Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}))
    assert len(data.events) == 12 and data.rejected == 0  # every rating is there
    assert {e.item_id: e.context.get("category") for e in data.events} == {"0001": "Drama", "0002": "Comedy",
                                                                          "0404": None}
    err = capsys.readouterr().err
    assert f"2 lines of {tmp_path / 'movies.dat'} are not valid" in err
    assert f"{tmp_path / 'movies.dat'}:2: expected movie_id::title::genre|genre, got 1 field" in err


def test_the_eval_command_reports_the_categories_it_attached(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_movietweetings(tmp_path, b"0001::Noir (1950)::Drama\n0002::Laugh (1990)::Comedy\n")
    assert main(["eval", str(tmp_path), "--mode", "streaming", "--models", "livereco", "--genres", "combined",
                 "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["categories"] == "movies.dat, combined genre as category, for 2 of 3 rated movies (8 of 12 events)"


def test_movietweetings_movies_give_every_rated_movie_a_category(shared_data: Path) -> None:
    data = load(shared_data / "movietweetings-100k", Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}))
    assert len(data.events) == 100_000 and data.rejected == 0
    with_category = sum(1 for e in data.events if "category" in e.context)
    assert with_category == 99_921  # the other 79 ratings are of the 66 movies listed without genres
    assert len({e.context["category"] for e in data.events if "category" in e.context}) == 24


# --- issue 20, part 1: historical logs, the user protocol and its candidate rule, honest baselines -----------

Y1996 = 820_454_400.0  # 1996-01-01
Y2015_FEB = 1_422_748_800.0  # 2015-02-01


def write_user_log(path: Path, rows: list[tuple[str, str, float, float]]) -> None:
    """MovieTweetings' layout: ``user::item::rating::epoch``."""
    path.write_text("".join(f"{u}::{i}::{r:g}::{int(t)}\n" for u, i, r, t in rows))


def taste_log(users: int, start: float, seed: int = 5, step_s: float = 3600.0) -> list[tuple[str, str, float, float]]:
    """Two tastes: even users rate a-items, odd users b-items (10 of each, equally popular), one rating a ``step_s``."""
    rng = random.Random(seed)
    rows = []
    t = start
    for step in range(8):
        for u in range(users):
            group = "a" if u % 2 == 0 else "b"
            t += step_s
            rows.append((f"u{u}", f"{group}{(u + 3 * step + rng.randrange(2)) % 10}", 8.0, t))
    return rows


def test_a_1990s_log_is_evaluated_with_its_own_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "ratings.dat"
    write_user_log(log, taste_log(40, Y1996))
    settings = Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}, flow_metrics_port=0)
    data = load(log, settings)
    assert len(data.events) == 320 and data.rejected == 0
    assert data.events[0].ts == Y1996 + 3600.0 and data.events[-1].ts < 946_684_800.0  # all before 2000, kept as they are
    with pytest.raises(EventError, match="before 2000-01-01"):  # the live check is still the live check
        parse_event({"user_id": "u", "item_id": "a", "type": "view", "ts": Y1996})
    assert flow_time_shift(data.events) % (7 * 86400.0) == 0.0  # the flow alone sees whole weeks later
    live, _, _ = evaluate_livereco(data, settings)
    assert live.predictions == sum(data.scored) > 100
    assert live.report()["HR@10"] > 0.3  # lists to score: the flow took every event (it raises on one refused)
    assert main(["eval", str(log), "--models", "livereco,most-popular", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["mode"] == "user" and report["events"] == 320 and report["rejected_lines"] == 0
    assert all(r["predictions"] == report["predictions"] > 100 for r in report["results"])


@pytest.mark.parametrize("content", [b"", b"\n\n", b"1::a::8::1e30x\n2::b::eight::99\n"])
def test_a_log_with_no_usable_event_fails_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  content: bytes) -> None:
    log = tmp_path / "ratings.dat"
    log.write_bytes(content)
    assert main(["eval", str(log), "--models", "livereco"]) == 2
    err = capsys.readouterr().err
    assert "no usable event" in err and str(log) in err
    if content.strip():
        assert "all 2 lines were rejected" in err


def test_a_log_with_events_but_nothing_to_score_fails_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "ratings.dat"
    write_user_log(log, [(f"u{k}", "a", 9.0, T0 + k) for k in range(10)])  # ten users, one rating each
    assert main(["eval", str(log)]) == 2
    assert "no prediction to score under the user protocol" in capsys.readouterr().err


def test_silently_dropped_lines_are_counted_in_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "ratings.dat"
    write_user_log(log, taste_log(20, T0))
    with log.open("a") as f:
        f.write("u1::a1::8::-5\nu2::a2::8::soon\n")  # before the epoch; not a time
    assert main(["eval", str(log), "--models", "most-popular", "--json"]) == 0
    captured = capsys.readouterr()
    assert orjson.loads(captured.out)["rejected_lines"] == 2
    assert "2 log lines are not valid events" in captured.err and "is before 1970-01-01" in captured.err


def consumed_log() -> list[Event]:
    """u1 and u2 touch a, b, c; u3 touches a then b: popularity lists [a, b, c] when u3's b is predicted."""
    return [Event(u, i, "view", T0 + 10 * n + k) for n, u in enumerate(("u1", "u2")) for k, i in enumerate("abc")] + \
        [Event("u3", "a", "view", T0 + 100.0), Event("u3", "b", "view", T0 + 101.0)]


def test_the_user_protocol_removes_consumed_items_from_every_models_list() -> None:
    settings = Settings.from_env({}, flow_metrics_port=0)
    user = protocol("toy", consumed_log(), settings, "user", 0.0, 0.0)
    session = protocol("toy", consumed_log(), settings, "session", 0.0, 0.0)
    assert user.exclude_consumed and not session.exclude_consumed
    last = len(user.events) - 1
    assert user.scored[last] and session.scored[last]
    # u3 had a: the rule removes it, so b is first; in session mode a stays, and b is second
    assert evaluate_baseline(MostPopular(), user).ranks[-1] == 1
    assert evaluate_baseline(MostPopular(), session).ranks[-1] == 2
    # livereco with its own items recommended back (RECENT_WEIGHT=3): the scorer applies the same rule to its list
    live, _, _ = evaluate_livereco(user, dataclasses.replace(settings, recent_weight=3.0))
    assert live.held_excluded > 0 and live.ranks[-1] == 1


def test_a_repeat_of_a_consumed_item_is_not_a_prediction_in_user_mode() -> None:
    events = [Event("u", "a", "view", T0), Event("u", "b", "view", T0 + 1), Event("u", "a", "view", T0 + 2)]
    data = protocol("toy", events, Settings(), "user", 0.0, 0.0)
    assert data.scored == [False, True, False] and data.repeats == 1


def test_mode_says_which_protocol_ran_and_the_old_spelling_still_picks_the_learning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "ratings.dat"
    write_user_log(log, taste_log(20, T0, step_s=10.0))  # a user's ratings 200 s apart: sessions
    for mode in ("session", "user"):
        assert main(["eval", str(log), "--mode", mode, "--mode", "streaming", "--models", "most-popular",
                     "--json"]) == 0
        report = orjson.loads(capsys.readouterr().out)
        assert report["mode"] == mode and [r["learning"] for r in report["results"]] == ["streaming"]
        assert ("touched before" in report["candidate_rule"]) == (mode == "user")
    assert main(["eval", str(log), "--models", "most-popular"]) == 0
    assert "user protocol" in capsys.readouterr().out.splitlines()[0]


def test_train_and_warmup_fractions_are_learned_not_scored(tmp_path: Path) -> None:
    log = tmp_path / "ratings.dat"
    write_user_log(log, taste_log(20, T0))
    data = load(log, Settings(), train_fraction=0.25, warmup_fraction=0.25)
    assert data.test_start == 40 and not any(data.scored[:80]) and any(data.scored[80:])
    assert data.validation is not None and len(data.validation.events) == 80
    assert not any(data.validation.scored[:40]) and any(data.validation.scored[40:])


def test_columns_map_a_log_like_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.csv"
    log.write_text("who,what,when\n" + "".join(f"{u},{i},{int(t)}\n" for u, i, _, t in taste_log(10, T0)))
    assert main(["eval", str(log), "--columns", "user_id=who,item_id=what,ts=when", "--models", "most-popular",
                 "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["events"] == 80
    with pytest.raises(SystemExit) as exited:
        main(["eval", str(log), "--columns", "user_id=who,itemid=what"])
    assert exited.value.code == 2 and "'itemid' is not an event field" in capsys.readouterr().err


def test_coverage_stays_within_the_catalog_when_test_items_are_not_in_train(tmp_path: Path) -> None:
    rows = [(f"s{s}", f"old{s % 3}", T0 + s * 60 + k) for s in range(20) for k in range(2)]
    rows += [(f"s{s}", f"new{(s + k) % 30}", T0 + s * 60 + k) for s in range(20, 80) for k in range(3)]
    write_split(tmp_path, rows, test_from=20)
    data = load(tmp_path, Settings.from_env({}, flow_metrics_port=0))
    report = evaluate_baseline(LastItemCoVisitation(), data).report(len(data.catalog))
    # the old denominator (3 training items) gave 10.0 here
    assert 3 / 33 < report["coverage@20"] <= 1.0


def test_the_output_gives_paired_differences_against_livereco(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_split(tmp_path, session_log(150), test_from=120)
    assert main(["eval", str(tmp_path), "--learning", "streaming", "--models", "livereco,most-popular,item-knn",
                 "--json"]) == 0
    rows = {r["model"]: r for r in orjson.loads(capsys.readouterr().out)["results"]}
    mean, se = rows["most-popular"]["livereco_minus_model"]["HR@10"]
    assert mean == pytest.approx(rows["livereco"]["HR@10"] - rows["most-popular"]["HR@10"], abs=1e-5)
    assert mean > 3 * se > 0  # chains: livereco far ahead of popularity
    assert "livereco_minus_model" not in rows["livereco"]
    assert rows["item-knn"]["setting"] == "default"  # the split's train spans minutes: no day to validate on
    log = tmp_path / "ratings.dat"
    write_user_log(log, taste_log(30, T0))
    assert main(["eval", str(log), "--models", "item-knn", "--json"]) == 0
    row = orjson.loads(capsys.readouterr().out)["results"][0]
    assert row["setting"].startswith("half-life") and row["setting"].endswith("(chosen on validation)")
    assert len(row["validation_HR@10"]) == len(ItemKNN.GRID)


def test_decayed_popularity_takes_its_half_life_from_the_validation_part() -> None:
    # every two hours ten new items become what everyone watches; all items end with equal counts
    events = [Event(f"u{u}", f"b{block}-{(u + k) % 10}", "view", T0 + block * 7200.0 + u * 30.0 + k)
              for block in range(30) for u in range(40) for k in range(2)]
    data = protocol("blocks", events, Settings(), "user", 0.0, 0.3)
    chosen, scores = tune("decayed-popularity", data)
    assert chosen is not None and chosen <= 6 * 3600.0
    assert scores[chosen] > scores[365 * 86400.0] + 0.2


def test_knn_and_bpr_learn_tastes_that_popularity_cannot() -> None:
    events = [Event(u, i, "rating", t, value=r) for u, i, r, t in taste_log(60, T0)]
    data = protocol("tastes", events, Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}), "user", 0.0, 0.0)
    popular = evaluate_baseline(MostPopular(), data).report()["HR@5"]
    assert evaluate_baseline(ItemKNN(), data).report()["HR@5"] > popular + 0.2
    assert evaluate_baseline(BPRMatrixFactorisation(learning_rate=0.1, seed=3), data).report()["HR@5"] > popular + 0.1


def test_item_knn_alpha_one_keeps_popular_neighbours_and_popularity_fills_short_lists() -> None:
    # "hit" is rated after "seed" by 6 of 20 users and by 20 more on its own; "niche" after "seed" by 2 users only
    events = [Event(f"fan{u}", "hit", "view", T0 + u) for u in range(20)]
    events += [Event(f"u{u}", "seed", "view", T0 + 100 + 2 * u) for u in range(20)]
    events += [Event(f"u{u}", "hit" if u < 6 else "niche" if u < 8 else f"solo{u}", "view", T0 + 101 + 2 * u)
               for u in range(20)]
    cosine, conditional = ItemKNN(), ItemKNN(alpha=1.0)
    for event in events:
        cosine.learn_one(event)
        conditional.learn_one(event)
    assert cosine.recommend("someone", 1) == conditional.recommend("someone", 1) == ["hit"]  # no history: popularity
    newcomer = Event("new", "seed", "view", T0 + 200)
    cosine.learn_one(newcomer)
    conditional.learn_one(newcomer)
    assert conditional.similar("seed")[0][0] == "hit"      # P(hit | seed) = 6/21: the most likely next
    assert cosine.similar("seed")[0][0] != "hit"          # the plain cosine damps hit's 26 ratings away
    # a lone item with no neighbour at all: the list is filled with popular items, and still full
    lone = ItemKNN(alpha=1.0)
    for event in [*events, Event("odd", "unique", "view", T0 + 300)]:
        lone.learn_one(event)
    listed = lone.recommend("odd", 5)
    assert len(listed) == 5 and listed[0] == "hit" and len(set(listed)) == 5
    assert ItemKNN(alpha=1.0, fill=False).recommend("someone", 3) == []
    with pytest.raises(ValueError, match="alpha"):
        ItemKNN(alpha=1.5)


def test_item_knn_chooses_half_life_and_alpha_on_the_validation_part_only() -> None:
    events = [Event(u, i, "rating", t, value=r) for u, i, r, t in taste_log(60, T0)]
    data = protocol("tastes", events, Settings.from_env({"LIVERECO_RATING_RANGE": "0,10"}), "user", 0.0, 0.3)
    chosen, scores = tune("item-knn", data)
    assert isinstance(chosen, tuple) and chosen in ItemKNN.GRID and set(scores) == set(ItemKNN.GRID)
    assert scores[chosen] == max(scores.values())
    # what it is chosen on is the validation part alone: without one, no choice (the default is used)
    assert tune("item-knn", dataclasses.replace(data, validation=None)) == (None, {})


def test_a_ratings_log_is_scored_on_its_own_scale_unless_one_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # A 0-10 log: on the default 1-5 scale a 3 would count as liked as much as a 10 and a 0 as a 1.
    log = tmp_path / "ratings.dat"
    rows = [(u, i, float((k * 3) % 11), t) for k, (u, i, _, t) in enumerate(taste_log(30, Y2015_FEB))]
    write_user_log(log, rows)

    def report(*env: str) -> dict[str, Any]:
        monkeypatch.delenv("LIVERECO_RATING_RANGE", raising=False)
        for pair in env:
            monkeypatch.setenv(*pair.split("=", 1))
        assert main(["eval", str(log), "--models", "livereco", "--json"]) == 0
        return orjson.loads(capsys.readouterr().out)

    own, given, narrow = report(), report("LIVERECO_RATING_RANGE=0,10"), report("LIVERECO_RATING_RANGE=1,5")
    assert own["rating_scale"] == "ratings 0..10: the scale is taken from the log (LIVERECO_RATING_RANGE is not set)"
    assert given["rating_scale"] is None and narrow["rating_scale"] is None
    assert _without_seconds(own) == _without_seconds(given)
    assert _without_seconds(own) != _without_seconds(narrow)  # the scale changes what the flow learns


def _without_seconds(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in report["results"]]
