"""The evaluation driver: protocol, baselines, and live metrics equal to offline ones for the same log."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import orjson
import pytest
import redis
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from flows.cli import main
from flows.dataflow import build_flow
from flows.evaluation import EvalData, evaluate_baseline, evaluate_livereco, load
from flows.event_writer import EventWriter
from online.baselines import LastItemCoVisitation, MostPopular
from online.contract import Event, Settings

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
    assert models == {"livereco", "most-popular", "decayed-popularity", "last-item-covisitation", "river-mf"}
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
