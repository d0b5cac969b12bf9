"""``livereco experiment load FILE [--check]``: experiments from a file a shop keeps under version control.

The file maps experiment names to their documents, the same documents as
``PUT /v1/experiments/{name}`` (:class:`online.experiments.Experiment`), in
JSON or TOML (by the file's extension)::

    {"home": {"variants": [{"name": "control", "share": 0.1, "control": true},
                           {"name": "livereco", "share": 0.9}]}}

Every experiment is validated before anything is written: one bad field
and nothing is loaded, the error naming the file, the experiment and the
field. Then all of them are written in one ``HSET`` (experiments of the file
replace those of the same name; others stay). Servers re-read experiments
every 250 ms, so the file is in force everywhere within a second, without
a restart. It is a command, not a file the server reads at start: loading is
an explicit act (like a deploy), and a server restart never undoes a share
changed at run time (a rollback by ``PUT``).

>>> parse_experiments("x.json", b'{"home": {"variants": [{"name": "a", "share": 1}]}}')[0].variants[0].name
'a'
>>> parse_experiments("x.json", b'{"home": {"variants": [{"name": "a", "share": 2}]}}')
Traceback (most recent call last):
...
ValueError: x.json: experiment 'home': variant 'a' share 2 must be a number in [0, 1]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

import orjson

from flows.redis_client import connect
from online.contract import Settings
from online.experiments import Experiment

__all__ = ["load", "parse_experiments", "run"]


def parse_experiments(name: str, data: bytes) -> list[Experiment]:
    """The experiments of a file's bytes (TOML if ``name`` ends in ``.toml``, else JSON); ``ValueError`` naming the
    file and the field of the first problem."""
    try:
        raw: Any = tomllib.loads(data.decode("utf-8")) if name.endswith(".toml") else orjson.loads(data)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: not valid {'TOML' if name.endswith('.toml') else 'JSON'}: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{name}: expected an object mapping experiment names to their documents"
                         ' ({"home": {"variants": [...]}})')
    experiments = []
    for experiment_name, document in raw.items():
        try:
            experiments.append(Experiment.from_json(str(experiment_name), document))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return experiments


def load(client: Any, settings: Settings, experiments: list[Experiment]) -> None:
    """Write ``experiments`` in one ``HSET`` (all or nothing)."""
    client.hset(settings.keys.experiments(),
                mapping={e.name: orjson.dumps(e.to_json()) for e in experiments})


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        experiments = parse_experiments(str(path), path.read_bytes())
    except OSError as exc:
        print(f"livereco experiment load: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"livereco experiment load: {exc}; nothing loaded", file=sys.stderr)
        return 2
    summary = ", ".join(f"{e.name} ({' / '.join(f'{v.name} {v.share:g}' for v in e.variants)}"
                        f"{'' if e.active else ', stopped'})" for e in experiments)
    if args.check:
        print(f"livereco experiment load: {path} is valid: {summary}")
        return 0
    client = connect(settings.redis_url)
    try:
        load(client, settings, experiments)
    finally:
        client.close()
    print(f"livereco experiment load: loaded {summary}; in force on every server within a second")
    return 0
