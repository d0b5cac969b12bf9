"""``livereco experiment report NAME [--json]``: each variant's users, impressions, clicks, CTR, conversions,
conversion rate and revenue per user, with 95% intervals, and the lift over control with its interval.

The figures are what the flow counted by attribution (:mod:`online.attribution`,
the sink's ``lr:exp:<name>:<variant>`` hashes and the variant's users as a
HyperLogLog, ±0.8%). Rates have Wilson score intervals: CTR is clicks per
impression (each item shown is one impression), the conversion rate
attributed purchases per user (a user buying twice counts twice: an
approximation while purchases per user are rare). Revenue per user is a mean
over the variant's users with a normal-approximation interval; its variance
takes each attributed purchase as one user's revenue (exact while no user
buys twice). A lift is the variant's figure over control's minus 1, its
interval from the log of the ratio (delta method). Control is the variant
marked ``control``, else the one named so, else the first.

The live HR@10 of a variant is prequential, on the lists the variant
actually served: each served list is labelled by the user's next event
(view, click, cart or purchase) -- a hit when its item is in the list's top
10 (:meth:`online.attribution.AttributionMemory.score_next`, counted as
``scored_lists`` and ``hits_at_10``), with a Wilson interval. Not the flow's
``livereco_flow_prequential_*``: those score the flow's own list, which is
the same model whatever variant a user is in, so per variant they would
not tell the variants apart.

>>> low, high = wilson(50, 1000)
>>> round(low, 4), round(high, 4)
(0.0381, 0.0653)
>>> lift = ratio_lift(0.06, 0.0075, 0.05, 0.0069)
>>> round(lift[0], 3), lift[1] < 0 < lift[2]
(0.2, True)
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import orjson

from flows import experiment_file
from flows.redis_client import connect
from online.contract import RedisKeys, Settings
from online.experiments import Experiment

__all__ = ["add_arguments", "ratio_lift", "report", "run", "wilson"]

Z = 1.959964
"""The normal quantile of a two-sided 95% interval."""


def wilson(successes: float, trials: float, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``(0, 0)`` without trials)."""
    if trials <= 0:
        return 0.0, 0.0
    p = min(1.0, successes / trials)
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_lift(value: float, se: float, control: float, control_se: float, z: float = Z
               ) -> tuple[float | None, float | None, float | None]:
    """``value / control - 1`` with its interval (log-ratio delta method); ``None`` where it is undefined."""
    if value <= 0 or control <= 0:
        return (value / control - 1.0 if control > 0 else None), None, None
    log_ratio = math.log(value / control)
    spread = z * math.sqrt((se / value) ** 2 + (control_se / control) ** 2)
    return value / control - 1.0, math.exp(log_ratio - spread) - 1.0, math.exp(log_ratio + spread) - 1.0


def _rate(successes: float, trials: float) -> dict[str, Any]:
    low, high = wilson(successes, trials)
    value = successes / trials if trials else 0.0
    se = math.sqrt(value * (1 - value) / trials) if trials and 0 < value < 1 else 0.0
    return {"value": value, "low": low, "high": high, "se": se}


def _mean(total: float, total_sq: float, n: float) -> dict[str, Any]:
    mean = total / n if n else 0.0
    variance = max(0.0, total_sq / n - mean * mean) if n else 0.0
    se = math.sqrt(variance / n) if n else 0.0
    return {"value": mean, "low": mean - Z * se, "high": mean + Z * se, "se": se}


def variant_figures(stats: dict[str, float], users: int) -> dict[str, Any]:
    """One variant's figures from its counters and its number of users."""
    impressions, clicks = stats.get("impressions", 0.0), stats.get("clicks", 0.0)
    conversions, revenue = stats.get("conversions", 0.0), stats.get("revenue", 0.0)
    return {"users": users, "impressions": int(impressions), "clicks": int(clicks), "conversions": int(conversions),
            "revenue": revenue, "ctr": _rate(clicks, impressions), "conversion_rate": _rate(conversions, users),
            "revenue_per_user": _mean(revenue, stats.get("revenue_sq", 0.0), users),
            "scored_lists": int(stats.get("scored_lists", 0.0)),
            "hr_at_10": _rate(stats.get("hits_at_10", 0.0), stats.get("scored_lists", 0.0))}


def control_of(experiment: Experiment) -> str:
    marked = [v.name for v in experiment.variants if v.control]
    if marked:
        return marked[0]
    names = [v.name for v in experiment.variants]
    return "control" if "control" in names else names[0]


def report(client: Any, keys: RedisKeys, name: str) -> dict[str, Any]:
    """The report of experiment ``name`` (``KeyError`` when no such experiment is stored)."""
    raw = client.hget(keys.experiments(), name)
    if raw is None:
        raise KeyError(name)
    experiment = Experiment.from_json(name, orjson.loads(raw))
    pipe = client.pipeline(transaction=False)
    for variant in experiment.variants:
        pipe.hgetall(keys.variant_stats(name, variant.name))
        pipe.pfcount(keys.variant_users(name, variant.name))
    replies = pipe.execute()
    variants: dict[str, dict[str, Any]] = {}
    for index, variant in enumerate(experiment.variants):
        stored, users = replies[2 * index], replies[2 * index + 1]
        stats = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in stored.items()}
        variants[variant.name] = {"share": variant.share, "control": variant.control,
                                  **variant_figures(stats, int(users))}
    control = control_of(experiment)
    base = variants[control]
    for figures in variants.values():
        figures["lift"] = {} if figures is base else {
            metric: dict(zip(("value", "low", "high"), ratio_lift(figures[metric]["value"], figures[metric]["se"],
                                                                  base[metric]["value"], base[metric]["se"]),
                             strict=True))
            for metric in ("ctr", "conversion_rate", "revenue_per_user", "hr_at_10")}
    return {"experiment": name, "active": experiment.active, "control": control, "variants": variants}


def _pct(figure: dict[str, Any]) -> str:
    return f"{100 * figure['value']:.2f}% [{100 * figure['low']:.2f}, {100 * figure['high']:.2f}]"


def _lift(figure: dict[str, Any]) -> str:
    if not figure or figure.get("value") is None:
        return "-"
    if figure.get("low") is None:
        return f"{100 * figure['value']:+.1f}%"
    return f"{100 * figure['value']:+.1f}% [{100 * figure['low']:+.1f}, {100 * figure['high']:+.1f}]"


def format_report(data: dict[str, Any]) -> str:
    lines = [f"experiment {data['experiment']} ({'active' if data['active'] else 'stopped'}), control:"
             f" {data['control']}; 95% intervals (Wilson for rates, normal approximation for means)"]
    for name, v in data["variants"].items():
        rpu = v["revenue_per_user"]
        lines += [f"\n{name} (share {v['share']:g})",
                  f"  users {v['users']:,}  impressions {v['impressions']:,}  clicks {v['clicks']:,}"
                  f"  conversions {v['conversions']:,}  revenue {v['revenue']:,.2f}",
                  f"  CTR              {_pct(v['ctr'])}   lift {_lift(v['lift'].get('ctr', {}))}",
                  f"  conversion rate  {_pct(v['conversion_rate'])}   lift {_lift(v['lift'].get('conversion_rate', {}))}",
                  f"  revenue per user {rpu['value']:.4f} [{rpu['low']:.4f}, {rpu['high']:.4f}]"
                  f"   lift {_lift(v['lift'].get('revenue_per_user', {}))}",
                  f"  live HR@10       {_pct(v['hr_at_10'])}   lift {_lift(v['lift'].get('hr_at_10', {}))}"
                  f"   ({v['scored_lists']:,} lists labelled by the user's next event)"]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``livereco experiment report NAME [--json]`` and ``livereco experiment load FILE [--check]``."""
    actions = p.add_subparsers(dest="action", required=True)
    report_parser = actions.add_parser("report", help="per variant: CTR, conversion, revenue per user, live HR@10,"
                                                      " with 95%% intervals, and the lift over control")
    report_parser.add_argument("name", help="the experiment's name")
    report_parser.add_argument("--json", action="store_true", help="the figures as JSON")
    load_parser = actions.add_parser("load", help="experiments from a JSON or TOML file (name -> document, as PUT"
                                                  " /v1/experiments/{name}); all validated before any is written")
    load_parser.add_argument("file", help="a .json or .toml file")
    load_parser.add_argument("--check", action="store_true", help="validate only; write nothing")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "load":
        return experiment_file.run(args, settings)
    client = connect(settings.redis_url)
    try:
        data = report(client, settings.keys, args.name)
    except KeyError:
        print(f"livereco experiment: no experiment {args.name!r} (PUT /v1/experiments/{args.name})", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if args.json else format_report(data))
    return 0
