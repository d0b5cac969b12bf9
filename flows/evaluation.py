"""``livereco eval LOG``: replay a log through the real dataflow and score it prequentially.

The dataflow's user-list stage scores every positive event against the list
that user had just before it (see :class:`~flows.stages.UserListLogic`); this
driver feeds a log through that same dataflow (an in-memory source instead of
Redis streams, a collecting sink instead of Redis) and runs baselines through
the same protocol and the same :class:`~online.metrics.PrequentialMetrics`.

Protocols
---------
* **Session split** (a folder with ``train.*`` and ``test.*``, e.g. rsc15-100k):
  learn on train in time order, then for every test session and every
  position i ≥ 1, the list produced from the session's first i events is
  scored against event i+1. HR@K / MRR@K over all items, no sampling.
* **User log** (one file, e.g. MovieTweetings ``ratings.dat``): test-then-learn
  over time; every positive event (rating ≥ ``--positive``) of a user seen
  before is scored against that user's list just before it. A ``movies.*``
  file beside it gives each movie's genres as its events' ``context.category``
  (:mod:`flows.catalog`; ``--genres`` picks how several genres map to one).

Modes: *streaming* (the models keep learning on the test part, as in
production) and *frozen* (item models learn only before the test part;
sessions still follow the test events).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from typing_extensions import override

from flows.catalog import GENRE_RULES, attach_category, read_movie_genres
from flows.dataflow import build_flow
from flows.gc_policy import periodic_collection
from flows.progress import Progress
from flows.redis_sink import PrequentialScore, RankerWrite, Write
from flows.redis_source import StreamEntry
from flows.replay import iter_log_events
from online.baselines import DecayedPopularity, LastItemCoVisitation, MatrixFactorisation, MostPopular
from online.compiled import describe
from online.contract import Event, EventError, Settings, parse_event
from online.metrics import PrequentialMetrics
from online.protocol import Recommender

__all__ = ["EvalData", "add_arguments", "evaluate_baseline", "evaluate_livereco", "load", "run"]

KS = (5, 10, 20)


@dataclass
class EvalData:
    """Time-ordered events, where the test part starts, and which events are scored."""

    name: str
    events: list[Event]
    test_start: int
    scored: list[bool]
    catalog: set[str] = field(default_factory=set)
    popularity: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    """Log lines that were not valid events (counted and reported, never silently dropped)."""
    categories: str = ""
    """Where the events' categories came from, and how many events have one (empty: none attached)."""

    @property
    def test_start_ts(self) -> float:
        return self.events[self.test_start].ts if self.test_start < len(self.events) else float("inf")


def _read(path: Path, settings: Settings, rejected: list[str], categories: Mapping[str, str] | None = None) -> list[Event]:
    """Valid events of ``path`` in time order; each bad line is appended to ``rejected`` as ``file:line: reason``.

    ``categories`` (item -> category) becomes the ``context.category`` of the
    items' events, unless the log gives one.
    """
    now = time.time()
    events = []

    def reject(line: int, error: EventError) -> None:
        rejected.append(f"{path}:{line}: {error}")

    for line, raw in iter_log_events(path, on_error=reject):
        if categories:
            attach_category(raw, categories)
        try:
            events.append(parse_event(raw, now=now, weights=settings.weights))
        except EventError as error:
            reject(line, error)
    events.sort(key=lambda e: e.ts)  # stable: ties keep file order
    return events


def _finish(name: str, events: list[Event], test_start: int, scored: list[bool], rejected: list[str]) -> EvalData:
    # Test-then-learn logs have no training part: the whole log is the catalog.
    train_counts = Counter(e.item_id for e in (events[:test_start] if test_start else events))
    ranked = sorted(train_counts, key=train_counts.__getitem__)
    popularity = {item: (i + 1) / len(ranked) for i, item in enumerate(ranked)}
    if rejected:
        print(f"livereco eval: {len(rejected)} log lines are not valid events and were skipped; first: {rejected[0]}",
              file=sys.stderr)
    return EvalData(name, events, test_start, scored, set(train_counts), popularity, len(rejected))


def load(path: str | Path, settings: Settings, positive: float = 7.0, genres: str = "first") -> EvalData:
    """A session split (folder with train/test files) or a single user log.

    A user log with a ``movies.*`` file beside it gets each movie's genres as
    its events' category, mapped by the rule ``genres`` (:data:`flows.catalog.GENRE_RULES`).
    Bad lines of that file are reported like bad log lines (file and line); their movies' events stay, uncategorised.
    """
    path = Path(path)
    rejected: list[str] = []
    if path.is_dir():
        train = sorted(path.glob("train.*"))
        test = sorted(path.glob("test.*"))
        if train and test:
            train_events, test_events = _read(train[0], settings, rejected), _read(test[0], settings, rejected)
            seen_users: set[str] = set()
            scored = [False] * len(train_events)
            for e in test_events:
                scored.append(e.user_id in seen_users)
                seen_users.add(e.user_id)
            return _finish(path.name, train_events + test_events, len(train_events), scored, rejected)
        logs = sorted(path.glob("ratings.*"))
        if not logs:
            raise FileNotFoundError(f"{path}: expected train.* and test.* files, or a ratings.* log")
        path = logs[0]
    catalog_files = sorted(path.parent.glob("movies.*")) if genres != "none" else []
    categories: dict[str, str] | None = None
    if catalog_files:
        catalog = read_movie_genres(catalog_files[0])
        categories = catalog.categories(genres)
        if catalog.rejected:
            print(f"livereco eval: {len(catalog.rejected)} lines of {catalog.path} are not valid and were skipped "
                  f"(their movies' ratings count, without a category); first: {catalog.rejected[0]}", file=sys.stderr)
    events = _read(path, settings, rejected, categories)
    users: set[str] = set()
    scored = []
    for e in events:
        is_positive = e.value >= positive if e.type == "rating" and e.value is not None else \
            settings.weights.weight_of(e) > 0
        scored.append(is_positive and e.user_id in users)
        users.add(e.user_id)
    data = _finish(path.name, events, 0, scored, rejected)
    if catalog_files:
        with_category = sum(1 for e in events if "category" in e.context)
        movies = len(set(categories or {}).intersection(data.catalog))
        data.categories = (f"{catalog_files[0].name}, {genres} genre as category, for {movies:,} of {len(data.catalog):,} "
                           f"rated movies ({with_category:,} of {len(events):,} events)")
    return data


class _CollectingPartition(StatelessSinkPartition[Write]):
    def __init__(self, scores: dict[int, PrequentialScore], ranker_weights: dict[int, dict[str, float]]):
        self.scores = scores
        self.ranker_weights = ranker_weights

    @override
    def write_batch(self, items: list[Write]) -> None:
        for w in items:
            if isinstance(w, PrequentialScore):
                self.scores[int(w.entry_id.rsplit("-", 1)[1])] = w
            elif isinstance(w, RankerWrite):
                self.ranker_weights[w.shard] = w.weights


class _CollectingSink(DynamicSink[Write]):
    def __init__(self) -> None:
        self.scores: dict[int, PrequentialScore] = {}
        self.ranker_weights: dict[int, dict[str, float]] = {}
        """Each ranker shard's last published weights."""

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CollectingPartition:
        return _CollectingPartition(self.scores, self.ranker_weights)


def _entries(events: Sequence[Event]) -> Iterable[StreamEntry]:
    for index, event in enumerate(events):
        yield StreamEntry("eval", f"{int(event.ts * 1000)}-{index}", {b"e": orjson.dumps(event.to_dict())})


def evaluate_livereco(data: EvalData, settings: Settings, frozen: bool = False, batch_size: int | None = None,
                      progress: Progress | None = None) -> tuple[PrequentialMetrics, float, dict[int, dict[str, float]]]:
    """Run the real dataflow over ``data``; returns the metrics, events/s and each ranker shard's final weights.

    Events enter in batches of ``batch_size`` (default: ``settings.read_count``,
    as the live source reads them), so the evaluation sees what production
    sees: events of one batch reach the item stage together. On RSC15, batch
    size 1 gives HR@20 0.7002 / MRR@20 0.3819 and 500 gives 0.7019 / 0.3819
    (the ranker's replicas see trending move in different steps); batch size 1
    equals :class:`flows.model.LiverecoModel` exactly (``tests/test_model.py``).
    """
    sink = _CollectingSink()
    # Encoded before the clock starts: turning events into JSON is the producers' work (the live
    # source reads stored bytes), 6.7 µs per event here, about 4% of the clocked run.
    entries = list(_entries(data.events))
    source = TestingSource(progress.track(entries) if progress else entries, batch_size=batch_size or settings.read_count)
    flow = build_flow(settings, source=source, sink=sink, flow_id="livereco-eval",
                      learn_until_ts=data.test_start_ts if frozen else None, recoverable=False)
    started = time.perf_counter()
    with periodic_collection(settings.gc_interval_s):  # as the live flow runs
        run_main(flow)
    seconds = time.perf_counter() - started
    metrics = PrequentialMetrics(KS)
    for index, is_scored in enumerate(data.scored):
        if is_scored:
            score = sink.scores.get(index)
            metrics.update(score.listed if score else (), data.events[index].item_id, data.popularity)
    return metrics, len(data.events) / seconds, sink.ranker_weights


def evaluate_baseline(model: Recommender, data: EvalData, frozen: bool = False,
                      progress: Progress | None = None) -> PrequentialMetrics:
    """Predict-then-learn over ``data`` with ``model``; frozen models only follow sessions in the test part."""
    metrics = PrequentialMetrics(KS)
    events: Iterable[Event] = progress.track(data.events) if progress else data.events
    for index, event in enumerate(events):
        if data.scored[index]:
            metrics.update(model.recommend(event.user_id, KS[-1]), event.item_id, data.popularity)
        if frozen and index >= data.test_start:
            observe = getattr(model, "observe_one", None)
            if observe is not None:
                observe(event)
            continue
        model.learn_one(event)
    return metrics


BASELINES: dict[str, Any] = {
    "most-popular": MostPopular,
    "decayed-popularity": DecayedPopularity,
    "last-item-covisitation": LastItemCoVisitation,
    "river-mf": MatrixFactorisation,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", help="a folder with train.* and test.* (session split) or a single log file")
    parser.add_argument("--mode", choices=("streaming", "frozen", "both"), default="both")
    parser.add_argument("--models", default="livereco," + ",".join(BASELINES),
                        help="comma-separated: livereco and any of " + ", ".join(BASELINES))
    parser.add_argument("--positive", type=float, default=7.0, help="ratings at or above this are positives")
    parser.add_argument("--genres", choices=GENRE_RULES, default="first",
                        help="with a movies.* file beside a ratings log: which of a movie's genres is its category "
                             "(first listed, rarest in the catalog, all combined as one, or none)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = load(args.log, settings, args.positive, args.genres)
    except (FileNotFoundError, ValueError) as exc:
        print(f"livereco eval: {exc}", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m != "livereco" and m not in BASELINES]
    if unknown:
        print(f"livereco eval: unknown model {unknown[0]!r}", file=sys.stderr)
        return 2
    modes = ("streaming", "frozen") if args.mode == "both" else (args.mode,)
    eval_settings = replace(settings, flow_metrics_port=0)
    rows: list[dict[str, Any]] = []
    speed = 0.0
    for mode in modes:
        for name in models:
            started = time.perf_counter()
            weights: dict[int, dict[str, float]] = {}
            progress = Progress(len(data.events), f"{name} ({mode})")  # draws on a terminal only
            if name == "livereco":
                metrics, eps, weights = evaluate_livereco(data, eval_settings, frozen=mode == "frozen",
                                                          progress=progress)
                speed = speed or eps
            else:
                metrics = evaluate_baseline(BASELINES[name](), data, frozen=mode == "frozen", progress=progress)
            progress.close()
            row = {"model": name, "mode": mode, **metrics.report(len(data.catalog)),
                   "seconds": round(time.perf_counter() - started, 2)}
            if weights:
                row["ranker_weights"] = {f"shard{shard}": {k: round(v, 3) for k, v in w.items()}
                                         for shard, w in sorted(weights.items())}
            rows.append(row)
            if not args.json:
                print(f"  done: {name} ({mode}) in {row['seconds']} s", file=sys.stderr)
    if args.json:
        print(orjson.dumps({"log": str(args.log), "events": len(data.events), "rejected_lines": data.rejected,
                            "categories": data.categories,
                            "results": rows,
                            "livereco_events_per_s": round(speed, 1), "build": describe()},
                           option=orjson.OPT_INDENT_2).decode())
        return 0
    cols = ["HR@5", "MRR@5", "HR@10", "MRR@10", "HR@20", "MRR@20", "coverage@20", "popularity"]
    print(f"{data.name}: {len(data.events):,} events ({data.rejected:,} bad lines skipped), "
          f"{sum(data.scored):,} predictions scored" + (f"; categories: {data.categories}" if data.categories else ""))
    print(f"{'model':<24}{'mode':<11}" + "".join(f"{c:>12}" for c in cols))
    for row in rows:
        print(f"{row['model']:<24}{row['mode']:<11}" + "".join(f"{row.get(c, 0.0):>12.4f}" for c in cols))
    for row in rows:
        for shard, w in row.get("ranker_weights", {}).items():
            print(f"livereco ranker ({row['mode']}, {shard}): " + ", ".join(f"{k} {v:g}" for k, v in w.items()))
    if speed:
        print(f"livereco dataflow: {speed:,.0f} events/s ({describe()})")
    return 0


