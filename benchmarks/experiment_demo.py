"""The lift, end to end: ``livereco run``, an experiment of control (trending only) against livereco, the responding
shop for a few minutes, then ``livereco experiment report``.

    .venv/bin/python -m benchmarks.experiment_demo --minutes 3

What it does, in order:

1. starts an embedded Redis in a temporary directory and ``livereco run --rate 0`` on it (embedded flow and server,
   free ports, no built-in producer);
2. ``PUT /v1/experiments/demo``: ``control`` (``"control": true``, trending only) and ``livereco`` (the product as
   configured), half the users each, assigned by the stable hash of (experiment, user);
3. runs the responding synthetic shop (:func:`flows.synthetic_shop.produce` with ``respond=True``, the same as
   ``livereco produce --respond``) against the server for ``--minutes``: each session begins with the shopper
   fetching their list, who may click an item of it by their hidden taste and sends its ``rec_id`` back;
4. waits until the flow has counted everything sent (the variants' counters stop moving), prints
   ``livereco experiment report demo`` (``--json`` too with ``--json``), and stops everything.

Neither side is told which variant a shopper is in: the simulator clicks by taste and position only, the same
code for both variants, so a difference in CTR is a difference in the lists. A demo command rather than a
``livereco run --experiment-demo`` flag: it is a measurement (a fixed-length run with a printed result, like the other
``benchmarks``), and ``livereco run`` stays the product's one way to start the system, which this script calls.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import redis

from flows.embedded_redis import EmbeddedRedis, free_port
from flows.readiness import wait_until_answering
from flows.synthetic_shop import produce
from online.contract import RedisKeys

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "demo"
DOCUMENT = {"variants": [{"name": "control", "share": 0.5, "control": True}, {"name": "livereco", "share": 0.5}]}


def _put(url: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(url, data=orjson.dumps(body), method="PUT",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(orjson.loads(answer.read()))


def _settled(client: redis.Redis, keys: RedisKeys, timeout_s: float = 60.0) -> None:
    """Wait until the variants' counters have not moved for two seconds (the flow has caught up)."""
    def snapshot() -> list[dict[bytes, bytes]]:
        return [client.hgetall(keys.variant_stats(EXPERIMENT, v["name"])) for v in DOCUMENT["variants"]]

    deadline = time.monotonic() + timeout_s
    last, since = snapshot(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = snapshot()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            return


def by_source(metrics: str) -> dict[str, dict[str, list[int]]]:
    """Variant -> source -> [impressions, attributed clicks], from the flow's ``livereco_flow_attributed_total``.

    >>> by_source('livereco_flow_attributed_total{kind="click",source="personal",status="attributed",variant="a"} 3.0')
    {'a': {'personal': [0, 3]}}
    """
    out: dict[str, dict[str, list[int]]] = {}
    for line in metrics.splitlines():
        if not line.startswith("livereco_flow_attributed_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        fields = dict(part.split("=", 1) for part in labels[labels.index("{") + 1:-1].split(","))
        kind, status = fields["kind"].strip('"'), fields["status"].strip('"')
        if status != "attributed" or kind not in ("impression", "click"):
            continue
        row = out.setdefault(fields["variant"].strip('"'), {}).setdefault(fields["source"].strip('"'), [0, 0])
        row[kind == "click"] += int(float(value))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiment_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the shop runs (default 3)")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second (default 200)")
    parser.add_argument("--users", type=int, default=1000,
                        help="simulated shoppers (default 1000: most lists go to returning shoppers within minutes)")
    parser.add_argument("--items", type=int, default=2000, help="catalog items (default 2000, as produce)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the catalog and the shoppers (default 7)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON too")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="livereco-demo-") as tmp:
        embedded = EmbeddedRedis(data_dir=str(Path(tmp) / "redis")).start()
        port, metrics_port = free_port(), free_port()
        env = {**os.environ, "REDIS_URL": embedded.url, "LIVERECO_HOST": "127.0.0.1", "LIVERECO_PORT": str(port),
               "LIVERECO_FLOW_METRICS_PORT": str(metrics_port), "LIVERECO_DATA_DIR": str(Path(tmp) / "data")}
        base = f"http://127.0.0.1:{port}"
        system = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--rate", "0"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        client = redis.Redis.from_url(embedded.url)
        try:
            wait_until_answering(f"{base}/readyz", [system], timeout_s=120)
            _put(f"{base}/v1/experiments/{EXPERIMENT}", DOCUMENT)
            print(f"livereco run at {base}; experiment {EXPERIMENT!r}: control (trending only) 50% against livereco"
                  f" 50%; the responding shop for {args.minutes:g} min at {args.rate:g} events/s, {args.users} users,"
                  f" {args.items} items, seed {args.seed}", flush=True)
            stats = produce(base, args.rate, seed=args.seed, n_users=args.users, n_items=args.items,
                            duration_s=args.minutes * 60, respond=True, log=sys.stderr)
            print(f"livereco produce --respond: {stats.summary()}", flush=True)
            _settled(client, RedisKeys(env.get("LIVERECO_NAMESPACE", "lr"), 1))
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
                sources = by_source(answer.read().decode())
            print("\nimpressions and clicks by the source of the item (livereco_flow_attributed_total):")
            for variant, rows in sorted(sources.items()):
                print(f"  {variant:<10}" + "  ".join(f"{source} {shown:,}/{clicked:,}"
                                                     f" ({100 * clicked / shown if shown else 0:.2f}%)"
                                                     for source, (shown, clicked) in sorted(rows.items())))
            report_env = {**env}
            for flag in (["experiment", "report", EXPERIMENT], ["experiment", "report", EXPERIMENT, "--json"]):
                if "--json" in flag and not args.json:
                    continue
                done = subprocess.run([sys.executable, "-m", "flows.cli", *flag], cwd=ROOT, env=report_env,
                                      capture_output=True, text=True, timeout=60)
                print(f"\n$ livereco {' '.join(flag)}\n{done.stdout}{done.stderr}", end="", flush=True)
            return 0 if stats.ok else 1
        finally:
            client.close()
            if system.poll() is None:
                os.killpg(system.pid, signal.SIGINT)  # livereco run stops producer, server and flow in order
                try:
                    system.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(system.pid, signal.SIGKILL)
                    system.wait()
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
