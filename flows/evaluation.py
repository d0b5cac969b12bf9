"""``livereco eval LOG``: replay a log through the real dataflow and score it prequentially.

The dataflow's user-list stage scores every positive event against the list
that user had just before it (see :class:`~flows.stages.UserListLogic`); this
driver feeds a log through that same dataflow (an in-memory source instead of
Redis streams, a collecting sink instead of Redis) and runs baselines through
the same protocol, the same candidate rule and the same
:class:`~online.metrics.PrequentialMetrics`. What is scored, under which
protocol (``--mode session|user``) and candidate rule, is :mod:`flows.eval_data`.

Learning (``--learning``): *streaming* (the models keep learning on the test
part, as in production) and *frozen* (item models learn only before the test
part; sessions still follow the test events). ``--mode streaming|frozen|both``
is the older spelling of ``--learning`` and still works.

Baselines with a ``GRID`` (decayed popularity's half-life, item-kNN's
half-life and asymmetric-cosine alpha, BPR's learning rate) are run over the
validation part once per value (a tuple: the first parameters, in order); the value with the best HR@10 there is the one scored and reported.
Each baseline's HR and MRR are compared with livereco's on the same
predictions: the mean paired difference and its standard error.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from typing_extensions import override

from flows.catalog import GENRE_RULES
from flows.dataflow import build_flow
from flows.eval_data import MODES, EvalData, load
from flows.gc_policy import periodic_collection
from flows.progress import Progress
from flows.redis_sink import DeadLetter, PrequentialScore, RankerWrite, Write
from flows.redis_source import StreamEntry
from flows.replay import Columns, parse_columns
from online.baselines import (
    BPRMatrixFactorisation,
    DecayedPopularity,
    ItemKNN,
    LastItemCoVisitation,
    MatrixFactorisation,
    MostPopular,
)
from online.compiled import describe
from online.contract import DEFAULT_LIMITS, Event, Settings
from online.metrics import PrequentialMetrics, paired_difference
from online.protocol import Recommender

__all__ = [
    "KS",
    "EvalData",
    "GridValue",
    "add_arguments",
    "evaluate_baseline",
    "evaluate_livereco",
    "flow_time_shift",
    "load",
    "make_baseline",
    "ratings_scale",
    "run",
    "tune",
]

KS = (5, 10, 20)
LEARNING = ("streaming", "frozen", "both")
WEEK = 7 * 86400.0
TUNE_K = 10
"""Tuned baselines choose their parameter by HR at this cut on the validation part."""


class _CollectingPartition(StatelessSinkPartition[Write]):
    def __init__(self, sink: _CollectingSink):
        self.sink = sink

    @override
    def write_batch(self, items: list[Write]) -> None:
        for w in items:
            if isinstance(w, PrequentialScore):
                self.sink.scores[int(w.entry_id.rsplit("-", 1)[1])] = w
            elif isinstance(w, RankerWrite):
                self.sink.ranker_weights[w.shard] = w.weights
            elif isinstance(w, DeadLetter):
                self.sink.dead_letters.append(f"{w.entry_id}: {w.reason}")


class _CollectingSink(DynamicSink[Write]):
    def __init__(self) -> None:
        self.scores: dict[int, PrequentialScore] = {}
        self.ranker_weights: dict[int, dict[str, float]] = {}
        """Each ranker shard's last published weights."""
        self.dead_letters: list[str] = []
        """Events the flow refused (none, unless the log breaks a live rule the driver does not know of)."""

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CollectingPartition:
        return _CollectingPartition(self)


def flow_time_shift(events: Sequence[Event], now: float | None = None) -> float:
    """Seconds (whole weeks) to add to every event so that the live flow's parse accepts the log; 0 if it does as is.

    The flow parses each stream entry with the live limits (nothing before
    2000, nothing more than a day ahead of its clock), which a historical log
    may break. A shift by whole weeks keeps every interval, hour of day and
    weekday, so every model sees the same log; only the flow is fed the shift.

    >>> flow_time_shift([Event("u", "a", "view", 1.7e9)], now=1.8e9)
    0.0
    >>> shift = flow_time_shift([Event("u", "a", "view", 820454400.0), Event("u", "b", "view", 900000000.0)], now=1.8e9)
    >>> shift % WEEK, 946684800.0 <= 820454400.0 + shift
    (0.0, True)
    """
    if not events:
        return 0.0
    now = time.time() if now is None else now
    low, high = min(e.ts for e in events), max(e.ts for e in events)
    floor, ceiling = DEFAULT_LIMITS.min_ts, now + DEFAULT_LIMITS.max_future_s - WEEK
    if low >= floor and high <= ceiling:
        return 0.0
    shift = math.ceil((floor - low) / WEEK) * WEEK if low < floor else -math.ceil((high - ceiling) / WEEK) * WEEK
    if low + shift < floor or high + shift > ceiling:
        raise ValueError(f"the log spans {(high - low) / 86400 / 365.25:.1f} years: more than the live flow accepts "
                         f"(from 2000 to a day from now)")
    return shift


def _entries(events: Sequence[Event], shift: float = 0.0) -> Iterable[StreamEntry]:
    for index, event in enumerate(events):
        if shift:
            event = replace(event, ts=event.ts + shift)
        yield StreamEntry("eval", f"{int(event.ts * 1000)}-{index}", {b"e": orjson.dumps(event.to_dict())})


def _score(data: EvalData, lists: Callable[[int, Event, int], Sequence[str]],
           learn: Callable[[int, Event], None] | None = None, progress: Progress | None = None) -> PrequentialMetrics:
    """Walk ``data`` in order: score each prediction's list under the candidate rule, then let the model learn."""
    metrics = PrequentialMetrics(KS)
    consumed: dict[str, set[str]] = {}
    rule = data.exclude_consumed
    events: Iterable[Event] = progress.track(data.events) if progress else data.events
    for index, event in enumerate(events):
        if data.scored[index]:
            exclude = consumed.get(event.user_id, set()) if rule else set()
            metrics.update(lists(index, event, KS[-1] + len(exclude)), event.item_id, data.popularity, exclude)
        if learn is not None:
            learn(index, event)
        if rule:
            consumed.setdefault(event.user_id, set()).add(event.item_id)
    return metrics


def evaluate_livereco(data: EvalData, settings: Settings, frozen: bool = False, batch_size: int | None = None,
                      progress: Progress | None = None) -> tuple[PrequentialMetrics, float, dict[int, dict[str, float]]]:
    """Run the real dataflow over ``data``; returns the metrics, events/s and each ranker shard's final weights.

    Events enter in batches of ``batch_size`` (default: ``settings.read_count``,
    as the live source reads them), so the evaluation sees what production
    sees: events of one batch reach the item stage together. On RSC15, batch
    size 1 gives HR@20 0.7002 / MRR@20 0.3819 and 500 gives 0.7019 / 0.3819
    (the ranker's replicas see trending move in different steps); batch size 1
    equals :class:`flows.model.LiverecoModel` exactly (``tests/test_model.py``).
    Each scored list is the top 20 the flow served, less what the candidate rule excludes.
    """
    sink = _CollectingSink()
    shift = flow_time_shift(data.events)
    # Encoded before the clock starts: turning events into JSON is the producers' work (the live
    # source reads stored bytes), 6.7 µs per event here, about 4% of the clocked run.
    entries = list(_entries(data.events, shift))
    source = TestingSource(progress.track(entries) if progress else entries, batch_size=batch_size or settings.read_count)
    flow = build_flow(settings, source=source, sink=sink, flow_id="livereco-eval",
                      learn_until_ts=data.test_start_ts + shift if frozen else None, recoverable=False)
    started = time.perf_counter()
    with periodic_collection(settings.gc_interval_s):  # as the live flow runs
        run_main(flow)
    seconds = time.perf_counter() - started
    if sink.dead_letters:
        raise RuntimeError(f"the dataflow refused {len(sink.dead_letters):,} events of the log; "
                           f"first: {sink.dead_letters[0]}")

    def listed(index: int, event: Event, n: int) -> Sequence[str]:
        score = sink.scores.get(index)
        return score.listed if score else ()

    return _score(data, listed), len(data.events) / seconds, sink.ranker_weights


def evaluate_baseline(model: Recommender, data: EvalData, frozen: bool = False,
                      progress: Progress | None = None) -> PrequentialMetrics:
    """Predict-then-learn over ``data`` with ``model``; frozen models only follow sessions in the test part.

    Under the user protocol the model is asked for 20 more items than the user
    has consumed, so that its list is full once they are removed.
    """
    observe = getattr(model, "observe_one", None)

    def learn(index: int, event: Event) -> None:
        if frozen and index >= data.test_start:
            if observe is not None:
                observe(event)
            return
        model.learn_one(event)

    return _score(data, lambda index, event, n: model.recommend(event.user_id, n), learn, progress)


BASELINES: dict[str, Callable[..., Recommender]] = {
    "most-popular": MostPopular,
    "decayed-popularity": DecayedPopularity,
    "last-item-covisitation": LastItemCoVisitation,
    "item-knn": ItemKNN,
    "bpr-mf": BPRMatrixFactorisation,
    "river-mf": MatrixFactorisation,
}
DEFAULT_MODELS = ("livereco", "most-popular", "decayed-popularity", "last-item-covisitation", "item-knn", "bpr-mf")
"""``river-mf`` (no negatives: it collapses) runs only when named."""


GridValue = float | tuple[float, ...]
"""A baseline's first parameter, or its first few (a tuple) in the order its constructor takes them."""


def make_baseline(name: str, value: GridValue | None = None) -> Recommender:
    """Baseline ``name`` with its default parameters, or with ``value`` (a grid value) as its first ones.

    >>> make_baseline("item-knn", (86400.0, 1.0)).alpha, make_baseline("decayed-popularity", 3600.0).half_life_s
    (1.0, 3600.0)
    """
    factory = BASELINES[name]
    if value is None:
        return factory()
    return factory(*value) if isinstance(value, tuple) else factory(value)


def tune(name: str, data: EvalData) -> tuple[GridValue | None, dict[GridValue, float]]:
    """The grid value of baseline ``name`` with the best HR@10 on ``data.validation`` (first on ties), and every value's.

    ``(None, {})`` for a baseline without a grid, or a log without a validation part (its default is used).
    """
    grid: tuple[GridValue, ...] = getattr(BASELINES[name], "GRID", ())
    if not grid or data.validation is None:
        return None, {}
    scores = {value: evaluate_baseline(make_baseline(name, value), data.validation).report()[f"HR@{TUNE_K}"]
              for value in grid}
    return max(grid, key=lambda value: scores[value]), scores


def _setting(name: str, value: GridValue) -> str:
    """A grid value as a reader reads it.

    >>> _setting("item-knn", (86400.0, 0.75)), _setting("bpr-mf", 0.05)
    ('half-life 1 d, alpha 0.75', 'learning rate 0.05')
    """
    if isinstance(value, tuple):
        return f"half-life {DecayedPopularity.describe(value[0])}, alpha {value[1]:g}"
    if name in ("decayed-popularity", "item-knn"):
        return f"half-life {DecayedPopularity.describe(value)}"
    return f"learning rate {value:g}"


class _ModeAction(argparse.Action):
    """``--mode``: a protocol (session, user), or the older spelling of ``--learning`` (streaming, frozen, both)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, "learning" if values in LEARNING else "mode", values)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def _columns(text: str) -> Columns:
    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", help="a folder with train.* and test.* (session split), or a single log file "
                        "(or a folder with a ratings.* file)")
    parser.add_argument("--mode", choices=(*MODES, *LEARNING), action=_ModeAction, default=None,
                        help="protocol: session (each session's next event; nothing excluded) or user (each user's "
                        "next positive event, the user's consumed items excluded for every model); default session "
                        "for a train/test split, user for a single log. streaming|frozen|both: as --learning")
    parser.add_argument("--learning", choices=LEARNING, default="both",
                        help="streaming: models learn the test part too; frozen: item models learn the training part "
                        "only (a single log needs --train-fraction); default both")
    parser.add_argument("--train-fraction", type=_fraction, default=0.0, metavar="F",
                        help="a single log's first F of events (time order): learned, not scored; frozen models "
                        "learn on it only (default 0)")
    parser.add_argument("--warmup-fraction", type=_fraction, default=None, metavar="W",
                        help="the next W of a single log: learned, not scored, the validation part tuned baselines "
                        "choose their parameter on (default 0.2)")
    parser.add_argument("--columns", type=_columns, default=None, metavar="MAPPING",
                        help="as livereco replay --columns: field=Column,... or field,field,... by position")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated: livereco and any of " + ", ".join(BASELINES))
    parser.add_argument("--positive", type=float, default=7.0, help="ratings at or above this are positives")
    parser.add_argument("--genres", choices=GENRE_RULES, default="first",
                        help="with a movies.* file beside a ratings log: which of a movie's genres is its category "
                             "(first listed, rarest in the catalog, all combined as one, or none)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def _header(data: EvalData) -> dict[str, Any]:
    rule = ("every item the user touched before is removed from every model's list; predictions of an item "
            f"the user had are not scored ({data.repeats:,})") if data.exclude_consumed else "nothing excluded"
    return {"log": data.name, "mode": data.mode, "candidate_rule": rule, "parts": data.parts,
            "events": len(data.events), "rejected_lines": data.rejected, "predictions": sum(data.scored),
            "catalog": len(data.catalog), "categories": data.categories,
            "validation": (f"{data.validation.name}: {sum(data.validation.scored):,} predictions"
                           if data.validation else "none: tuned baselines keep their defaults")}


def ratings_scale(settings: Settings, events: Sequence[Event],
                  env: Mapping[str, str] | None = None) -> tuple[Settings, str]:
    """``settings`` with the log's own rating scale when ``LIVERECO_RATING_RANGE`` is not set and the log's
    ratings fall outside the default one (a 0-10 log scored as 1-5 would count 6 and 10 alike), and a note
    saying so; otherwise ``settings`` and ``""``. A live deployment sets its scale; a log shows its own.

    >>> from online.contract import Event
    >>> ratings = [Event("u", "i", "rating", 1.7e9, value=v) for v in (0.0, 7.0, 10.0)]
    >>> scaled, note = ratings_scale(Settings(), ratings, env={})
    >>> scaled.rating_range, note
    ('0,10', 'ratings 0..10: the scale is taken from the log (LIVERECO_RATING_RANGE is not set)')
    >>> ratings_scale(Settings(), ratings, env={"LIVERECO_RATING_RANGE": "1,5"})[0].rating_range
    '1,5'
    """
    env = os.environ if env is None else env
    if env.get("LIVERECO_RATING_RANGE"):
        return settings, ""
    values = [e.value for e in events if e.type == "rating" and e.value is not None]
    if not values:
        return settings, ""
    low, high = min(values), max(values)
    lo, hi = settings.weights.rating_range
    if (lo <= low and high <= hi) or low == high:
        return settings, ""
    return (replace(settings, rating_range=f"{low:g},{high:g}"),
            f"ratings {low:g}..{high:g}: the scale is taken from the log (LIVERECO_RATING_RANGE is not set)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m != "livereco" and m not in BASELINES]
    if unknown:
        print(f"livereco eval: unknown model {unknown[0]!r}", file=sys.stderr)
        return 2
    try:
        data = load(args.log, settings, args.positive, args.genres, mode=args.mode, train_fraction=args.train_fraction,
                    warmup_fraction=args.warmup_fraction, columns=args.columns)
    except (FileNotFoundError, ValueError) as exc:
        print(f"livereco eval: {exc}", file=sys.stderr)
        return 2
    settings, rating_note = ratings_scale(settings, data.events)
    if rating_note and not args.json:
        print(f"  {rating_note}", file=sys.stderr)
    learning = ("streaming", "frozen") if args.learning == "both" else (args.learning,)
    if data.test_start == 0 and "frozen" in learning:
        if args.learning == "frozen":
            print("livereco eval: frozen learning needs a training part (--train-fraction)", file=sys.stderr)
            return 2
        learning = ("streaming",)
    eval_settings = replace(settings, flow_metrics_port=0)
    rows: list[dict[str, Any]] = []
    speed = 0.0
    chosen: dict[str, tuple[GridValue | None, dict[GridValue, float]]] = {}
    for name in models:
        if name != "livereco" and getattr(BASELINES[name], "GRID", ()):
            chosen[name] = tune(name, data)
            if not args.json:
                print(f"  tuned: {name} on the validation part: " + (
                    ", ".join(f"{_setting(name, v)} {hr:.4f}" for v, hr in chosen[name][1].items()) or "no validation part"),
                    file=sys.stderr)
    for mode in learning:
        results: dict[str, PrequentialMetrics] = {}
        for name in models:
            started = time.perf_counter()
            weights: dict[int, dict[str, float]] = {}
            progress = Progress(len(data.events), f"{name} ({mode})")  # draws on a terminal only
            value = chosen.get(name, (None, {}))[0]
            if name == "livereco":
                try:
                    metrics, eps, weights = evaluate_livereco(data, eval_settings, frozen=mode == "frozen",
                                                              progress=progress)
                except (RuntimeError, ValueError) as exc:
                    progress.close()
                    print(f"livereco eval: {exc}", file=sys.stderr)
                    return 1
                speed = speed or eps
            else:
                model = make_baseline(name, value)
                metrics = evaluate_baseline(model, data, frozen=mode == "frozen", progress=progress)
            progress.close()
            results[name] = metrics
            row: dict[str, Any] = {"model": name, "learning": mode, **metrics.report(len(data.catalog)),
                                   "seconds": round(time.perf_counter() - started, 2)}
            if name in chosen:
                row["setting"] = _setting(name, value) + " (chosen on validation)" if value is not None else "default"
                row["validation_HR@10"] = {_setting(name, v): hr for v, hr in chosen[name][1].items()}
            if weights:
                row["ranker_weights"] = {f"shard{shard}": {k: round(v, 3) for k, v in w.items()}
                                         for shard, w in sorted(weights.items())}
            rows.append(row)
            if not args.json:
                print(f"  done: {name} ({mode}) in {row['seconds']} s", file=sys.stderr)
        if "livereco" in results:
            for row in rows:
                if row["learning"] == mode and row["model"] != "livereco":
                    row["livereco_minus_model"] = {
                        f"{measure}@{k}": paired_difference(results["livereco"], results[row["model"]], measure, k)
                        for k in (10, 20) for measure in ("HR", "MRR")}
    header = _header(data)
    if args.json:
        print(orjson.dumps({**header, "log": str(args.log), "rating_scale": rating_note or None, "results": rows,
                            "livereco_events_per_s": round(speed, 1), "build": describe()},
                           option=orjson.OPT_INDENT_2).decode())
        return 0
    _print_table(header, rows, speed)
    return 0


def _print_table(header: dict[str, Any], rows: list[dict[str, Any]], speed: float) -> None:
    cols = ["HR@5", "MRR@5", "HR@10", "MRR@10", "HR@20", "MRR@20", "coverage@20", "popularity"]
    print(f"{header['log']}: {header['mode']} protocol; {header['events']:,} events ({header['rejected_lines']:,} bad "
          f"lines skipped; {header['parts']}), {header['predictions']:,} predictions scored")
    print(f"candidate rule: {header['candidate_rule']}")
    print(f"validation part: {header['validation']}" + (f"; categories: {header['categories']}"
                                                        if header["categories"] else ""))
    print(f"{'model':<24}{'learning':<11}" + "".join(f"{c:>12}" for c in cols) + f"{'excl.@20':>10}")
    for row in rows:
        print(f"{row['model']:<24}{row['learning']:<11}" + "".join(f"{row.get(c, 0.0):>12.4f}" for c in cols)
              + f"{row.get('excluded_in_top20', 0.0):>10.3f}")
    for row in rows:
        if "setting" in row:
            print(f"{row['model']} ({row['learning']}): {row['setting']}")
    for row in rows:
        diffs = row.get("livereco_minus_model")
        if diffs:
            print(f"livereco − {row['model']} ({row['learning']}), paired mean ± SE: " + ", ".join(
                f"{metric} {mean:+.4f} ± {se:.4f}" for metric, (mean, se) in diffs.items()))
    for row in rows:
        for shard, w in row.get("ranker_weights", {}).items():
            print(f"livereco ranker ({row['learning']}, {shard}): " + ", ".join(f"{k} {v:g}" for k, v in w.items()))
    if speed:
        print(f"livereco dataflow: {speed:,.0f} events/s ({describe()})")
