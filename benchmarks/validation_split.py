"""A validation split of a session log's training part: tune on it, not on the test part.

Sessions of ``train.tsv`` that start in its last ``--days`` (default 1) become
the validation test set (items never seen before that time and one-click
sessions dropped, as the session protocol does); the rest is its training
part. ``livereco eval OUT`` then scores it like the real split.

    .venv/bin/python -m benchmarks.validation_split [LOG] [OUT] [--days 1]
    .venv/bin/livereco eval OUT --mode streaming --models livereco
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def split(log: Path, out: Path, days: float) -> tuple[int, int, int]:
    """Write ``out/train.tsv`` and ``out/test.tsv``; returns (train clicks, test clicks, test sessions)."""
    lines = (log / "train.tsv").read_text().splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:] if line]
    columns = header.split("\t")
    session, item, time = columns.index("SessionId"), columns.index("ItemId"), columns.index("Time")
    cut = max(float(row[time]) for row in rows) - days * 86400.0
    starts: dict[str, float] = {}
    for row in rows:
        starts[row[session]] = min(starts.get(row[session], float(row[time])), float(row[time]))
    train = [row for row in rows if starts[row[session]] < cut]
    known = {row[item] for row in train}
    test = [row for row in rows if starts[row[session]] >= cut and row[item] in known]
    clicks = Counter(row[session] for row in test)
    test = [row for row in test if clicks[row[session]] >= 2]
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        (out / f"{name}.tsv").write_text("\n".join([header, *("\t".join(row) for row in part)]) + "\n")
    return len(train), len(test), len({row[session] for row in test})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", nargs="?", default=str(ROOT.parent / "shared" / "data" / "rsc15-100k"))
    parser.add_argument("out", nargs="?", default="/tmp/rsc15-validation")
    parser.add_argument("--days", type=float, default=1.0)
    args = parser.parse_args()
    train, test, sessions = split(Path(args.log), Path(args.out), args.days)
    print(f"{args.out}: {train:,} training clicks, {test:,} test clicks in {sessions:,} sessions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
