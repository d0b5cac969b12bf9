"""Write livereco's dashboards as Grafana JSON: ``python -m deploy.grafana.build [--out DIR] [--check]``.

The JSON in ``deploy/grafana/dashboards/`` is generated, committed, and provisioned by
``deploy/grafana/provisioning/dashboards/livereco.yml``; edit ``dashboards.py`` and rerun this.
``--check`` writes nothing and exits 1 when the committed files differ from what the code builds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from deploy.grafana.dashboards import DASHBOARDS

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def render(stem: str) -> str:
    """One dashboard as stable JSON text (sorted keys, two-space indent, final newline)."""
    return json.dumps(DASHBOARDS[stem](), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in DASHBOARDS:
        path = out / f"{stem}.json"
        path.write_text(render(stem))
        written.append(path)
    return written


def stale(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Dashboards whose file in ``directory`` is missing or differs from what the code builds."""
    return [stem for stem in DASHBOARDS
            if not (path := directory / f"{stem}.json").exists() or path.read_text() != render(stem)]


def expressions(board: dict[str, object]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL expression) of every query target in a dashboard's JSON."""
    for panel in board.get("panels", []):  # type: ignore[attr-defined]
        for query in panel.get("targets", []):
            yield panel["title"], query["expr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.grafana.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="directory to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing; exit 1 on a diff")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.out)
        for stem in differing:
            print(f"{args.out / stem}.json is stale: run python -m deploy.grafana.build", file=sys.stderr)
        return 1 if differing else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
