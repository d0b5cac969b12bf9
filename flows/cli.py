"""``livereco``: run the whole system, or one part of it.

Every flag falls back to an environment variable, shown as ``[env: NAME]``
in ``--help``; the full list of variables is in the README.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from flows.child_processes import die_with_parent, ignoring_signals, relay, stop_in_order
from flows.data_dir import DataDir, DataDirInUse
from flows.embedded_redis import APPENDFSYNC_POLICIES
from flows.recovery import DEFAULT_PARTITIONS
from flows.redis_client import SecretFilter, redact, scrub, url_secrets
from online.contract import Settings
from online.contract.api_keys import access_problem, access_summary
from online.contract.settings import unknown_variables

__all__ = ["main"]

log = logging.getLogger("livereco")


def _env_default(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *flags: str, env: str,
                 help: str, **kwargs: object) -> None:
    """An option whose default comes from ``env``, saying so in its help."""
    default = os.environ.get(env, kwargs.pop("default", None))
    parser.add_argument(*flags, default=default, help=f"{help} [env: {env}]", **kwargs)  # type: ignore[arg-type]


# --- livereco flow -------------------------------------------------------------------------------------------
def _add_flow_args(p: argparse.ArgumentParser) -> None:
    _env_default(p, "-w", "--workers-per-process", env="BYTEWAX_WORKERS_PER_PROCESS", type=int, default=1,
                 help="Bytewax workers (threads) in this process")
    _env_default(p, "-i", "--process-id", env="BYTEWAX_PROCESS_ID", type=int,
                 help="this process's index in a cluster (with -a)")
    p.add_argument("-a", "--addresses", action="append", default=None, metavar="HOST:PORT",
                   help="address of every process in the cluster, this one included, in process-id order: repeat"
                   " -a, or one 'host:port;host:port' [env: BYTEWAX_ADDRESSES]")
    _env_default(p, "-r", "--recovery-directory", env="BYTEWAX_RECOVERY_DIRECTORY", type=Path,
                 help="Bytewax recovery store (turns recovery on); created and initialised when missing or empty")
    _env_default(p, "--recovery-partitions", env="BYTEWAX_RECOVERY_PARTITIONS", type=int,
                 help="partitions of a new recovery store (fixed once created; default: the larger of"
                 f" {DEFAULT_PARTITIONS} and the cluster's workers); an existing store with another count is refused")
    _env_default(p, "-s", "--snapshot-interval", env="BYTEWAX_SNAPSHOT_INTERVAL", type=float, default=10.0,
                 help="seconds between snapshots (the epoch length)")
    _env_default(p, "-b", "--backup-interval", env="BYTEWAX_RECOVERY_BACKUP_INTERVAL", type=float, default=0.0,
                 help="seconds old snapshots are kept for backups")
    p.add_argument("--stop-at-end", action="store_true",
                   help="stop once every stream has been read to its end (replays, evaluations)")


def _flow_addresses(args: argparse.Namespace) -> list[str] | None:
    raw = args.addresses if args.addresses is not None else [os.environ.get("BYTEWAX_ADDRESSES", "")]
    addresses = [a.strip() for entry in raw for a in entry.split(";") if a.strip()]
    return addresses or None


def _prepare_recovery(args: argparse.Namespace, addresses: list[str] | None) -> str | None:
    """Create and initialise the recovery store if needed; an error message when it cannot be used.

    Process 0 creates a missing store (processes sharing one directory wait
    for it); the others only check it. A new store gets ``--recovery-partitions``,
    or by default the larger of DEFAULT_PARTITIONS and the cluster's worker count.
    """
    from flows.recovery import RecoveryStoreError, prepare_store

    directory: Path = args.recovery_directory
    workers = (len(addresses) if addresses else 1) * args.workers_per_process
    first = (args.process_id or 0) == 0
    try:
        count, created = prepare_store(directory, args.recovery_partitions,
                                       default=max(DEFAULT_PARTITIONS, workers),
                                       initialise=first, wait_s=0.0 if first else 30.0)
    except (RecoveryStoreError, OSError) as exc:
        return str(exc)
    if created:
        log.info("initialised recovery store %s with %d partitions", directory, count)
    elif count:
        log.info("recovery store %s (%d partitions): resuming from its last snapshot", directory, count)
    else:
        log.info("no recovery partitions in %s for this process: the cluster's other processes hold them", directory)
    return None


def _run_flow(args: argparse.Namespace, settings: Settings) -> int:
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main
    from prometheus_client import start_http_server

    from flows.dataflow import build_flow
    from flows.gc_policy import periodic_collection

    if not settings.redis_url:
        print("livereco flow: REDIS_URL is not set (livereco run starts an embedded Redis)", file=sys.stderr)
        return 2
    addresses = _flow_addresses(args)
    process_id = args.process_id or 0
    if addresses and (args.process_id is None or not 0 <= process_id < len(addresses)):
        print(f"livereco flow: -i must be a process id from 0 to {len(addresses) - 1} with {len(addresses)}"
              " addresses", file=sys.stderr)
        return 2
    if not addresses and process_id != 0:
        print("livereco flow: -i needs the cluster's addresses (-a)", file=sys.stderr)
        return 2
    problem = _check_redis(settings.redis_url, "livereco flow",
                           "starting anyway: each stream partition and the sink retry until it answers")
    if problem is not None:
        print(f"livereco flow: {problem}", file=sys.stderr)
        return 2
    recovery = None
    if args.recovery_directory is not None:
        problem = _prepare_recovery(args, addresses)
        if problem is not None:
            print(f"livereco flow: {problem}", file=sys.stderr)
            return 2
        recovery = RecoveryConfig(str(args.recovery_directory), timedelta(seconds=args.backup_interval))
    if settings.flow_metrics_port:
        port = settings.flow_metrics_port + process_id
        start_http_server(port, addr=settings.host)
        log.info("flow metrics on http://%s:%d/metrics", settings.host, port)
    workers = (len(addresses) if addresses else 1) * args.workers_per_process
    if workers > 1:
        log.warning("%d workers: the catalog stage is off (it is keyed by item, and a user's events could reach the"
                    " user history out of order across workers); items' categories come from events'"
                    " context.category, lists are filtered by the catalog in the server as always", workers)
    flow = build_flow(settings, stop_at_end=args.stop_at_end, recoverable=recovery is not None,
                      use_catalog=workers == 1)
    with periodic_collection(settings.gc_interval_s):
        cli_main(
            flow,
            workers_per_process=args.workers_per_process,
            process_id=process_id if addresses else None,
            addresses=addresses,
            epoch_interval=timedelta(seconds=args.snapshot_interval),
            recovery_config=recovery,
        )
    return 0


# --- livereco serve ------------------------------------------------------------------------------------------
def _add_serve_args(p: argparse.ArgumentParser) -> None:
    _env_default(p, "--workers", env="LIVERECO_SERVER_WORKERS", type=int, default=1, help="server processes")
    _env_default(p, "--host", env="LIVERECO_HOST", help="bind address")
    _env_default(p, "--port", env="LIVERECO_PORT", type=int, help="port")


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from serving.server import serve

    if not settings.redis_url:
        print("livereco serve: REDIS_URL is not set (livereco run starts an embedded Redis)", file=sys.stderr)
        return 2
    problem = access_problem(settings)
    if problem:
        print(f"livereco serve: {problem}", file=sys.stderr)
        return 2
    log.info("%s", access_summary(settings))
    return serve(settings, workers=args.workers)


# --- livereco redis ------------------------------------------------------------------------------------------
def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the embedded Redis's append-only file and the flow's recovery store live; delete it"
                   " to start fresh (default .livereco) [env: LIVERECO_DATA_DIR]")
    p.add_argument("--appendfsync", choices=APPENDFSYNC_POLICIES, default=None,
                   help="fsync policy of the embedded Redis's append-only file: everysec loses at most about a"
                   " second of writes on power loss, always none (default everysec) [env: LIVERECO_REDIS_APPENDFSYNC]")


def _stop_on_signals() -> None:
    """`kill`, a closed terminal or a supervisor stop livereco as Ctrl-C does: it stops its children and exits.

    A signal this process was started ignoring stays ignored (``nohup livereco run`` survives the terminal).
    """
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _run_redis(args: argparse.Namespace, settings: Settings) -> int:
    from flows.embedded_redis import EmbeddedRedis

    _stop_on_signals()
    data = DataDir(args.data_dir or settings.data_dir)
    fsync = args.appendfsync or settings.redis_appendfsync
    server: EmbeddedRedis | None = None
    try:
        with data.lock("redis", "livereco redis") as lock_fd:
            try:
                server = EmbeddedRedis(port=args.port, data_dir=str(data.redis), appendfsync=fsync,
                                       keep_fds=(lock_fd,))
                server.start(timeout_s=_AOF_LOAD_S)
                print(f"embedded Redis at {server.url} (loopback only), data in {data.redis}\n"
                      f"  append-only file, appendfsync {fsync}; start fresh: stop it and delete {data.root}\n"
                      "Ctrl-C stops it", flush=True)
                while server.process is not None and server.process.poll() is None:
                    time.sleep(0.5)
                print(f"livereco redis: redis-server exited with {server.process and server.process.returncode};"
                      f" its log: {data.redis / 'redis.log'}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                return 0
            finally:
                with ignoring_signals(*_STOP_SIGNALS):
                    if server is not None:
                        server.stop()
    except (DataDirInUse, RuntimeError, OSError) as exc:
        print(f"livereco redis: {exc}", file=sys.stderr)
        return 1


# --- livereco run --------------------------------------------------------------------------------------------
_AOF_LOAD_S = 300.0
"""How long the embedded Redis may take to answer: it reads its whole append-only file first."""


def _check_redis(url: str, who: str, then: str) -> str | None:
    """Ping Redis once. A URL that cannot work: the message to stop with. No answer: one clear warning, then go on.

    Every message shows the URL with its password hidden.
    """
    from flows.redis_client import REDIS_EXCEPTIONS, connect

    unreachable: tuple[type[Exception], ...] = (*REDIS_EXCEPTIONS, OSError)
    try:
        client = connect(url)
    except ValueError as exc:
        return f"REDIS_URL {redact(url)} cannot be used: {exc}"
    except unreachable as exc:  # a cluster client asks a node for the slot map as it is made
        log.warning("%s: cannot reach Redis at %s (%s); %s", who, redact(url), exc, then)
        return None
    try:
        client.ping()
    except unreachable as exc:
        log.warning("%s: cannot reach Redis at %s (%s); %s", who, redact(url), exc, then)
    finally:
        client.close()
    return None


def _banner(settings: Settings, args: argparse.Namespace, redis_url: str, data: DataDir, fsync: str,
            embedded: bool) -> str:
    base = f"http://{settings.host}:{settings.port}"
    user = "curious-newcomer"
    if embedded:
        where = f"embedded Redis at {redis_url} (loopback only)"
        kept = (f"{data.root}\n                (Redis append-only file, appendfsync {fsync}; the flow's recovery store)")
    else:
        where = f"Redis at {redact(redis_url)}"
        kept = f"{data.root}\n                (the flow's recovery store; Redis keeps its own data)"
    return f"""
livereco is running ({where})
  server        {base}            (OpenAPI: {base}/openapi.json)
  flow metrics  http://{settings.host}:{settings.flow_metrics_port}/metrics
  producer      a synthetic shop, {args.rate:g} events/s{' (off)' if args.rate <= 0 else ''}
  data          {kept}
                kept across restarts; to start fresh, stop livereco and delete {data.root}

Try:
  curl -s '{base}/v1/trending?n=5'
  curl -s -XPOST {base}/v1/events -H 'content-type: application/json' \\
       -d '[{{"user_id":"{user}","item_id":"sku-00001","type":"view"}},{{"user_id":"{user}","item_id":"sku-00002","type":"view"}},{{"user_id":"{user}","item_id":"sku-00003","type":"view"}}]'
  curl -s '{base}/v1/users/{user}/recommendations?n=5'
  curl -s '{base}/v1/items/sku-00001/similar?n=5'
  curl -s {base}/metrics | grep livereco_serving_request_duration

Ctrl-C stops everything.
"""


def _run_all(args: argparse.Namespace, settings: Settings) -> int:
    """Embedded Redis (unless REDIS_URL), flow, server and producer; stopped in reverse order on any stop signal."""
    from flows.embedded_redis import EmbeddedRedis
    from flows.readiness import wait_until_answering

    _stop_on_signals()
    data = DataDir(args.data_dir or settings.data_dir)
    fsync = args.appendfsync or settings.redis_appendfsync
    secrets = url_secrets(settings.redis_url)
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    relays: list[threading.Thread] = []
    names: dict[int, str] = {}
    embedded: EmbeddedRedis | None = None
    base = f"http://{settings.host}:{settings.port}"
    try:
        with contextlib.ExitStack() as locks:
            recovery_fd = locks.enter_context(data.lock("recovery", "livereco run"))
            redis_fd = None if settings.redis_url else locks.enter_context(data.lock("redis", "livereco run"))
            try:
                if redis_fd is not None:
                    embedded = EmbeddedRedis(data_dir=str(data.redis), appendfsync=fsync, keep_fds=(redis_fd,))
                    embedded.start(timeout_s=_AOF_LOAD_S)
                    env["REDIS_URL"] = embedded.url
                else:
                    problem = _check_redis(settings.redis_url, "livereco run",
                                           "starting anyway: the flow and the server wait for it")
                    if problem is not None:
                        print(f"livereco run: {problem}", file=sys.stderr)
                        return 2

                def start(*argv: str, keep_fds: tuple[int, ...] = ()) -> None:
                    out = subprocess.PIPE if secrets else None  # relayed with the password taken out
                    child = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=env, stdout=out,
                                             stderr=out, start_new_session=True, pass_fds=keep_fds,
                                             preexec_fn=die_with_parent())
                    names[child.pid] = argv[0]
                    children.append(child)
                    if child.stdout is not None and child.stderr is not None:
                        relays.extend(relay(pipe, sink, lambda text: scrub(text, secrets))
                                      for pipe, sink in ((child.stdout, sys.stdout), (child.stderr, sys.stderr)))

                start("flow", "--recovery-directory", str(data.recovery), keep_fds=(recovery_fd,))
                start("serve")
                try:
                    wait_until_answering(f"{base}/readyz", children, timeout_s=60)
                except (RuntimeError, TimeoutError) as exc:
                    print(f"livereco run: the server did not become ready ({exc}); see the messages above",
                          file=sys.stderr)
                    return 1
                if args.rate > 0:
                    start("produce", "--rate", str(args.rate))
                print(_banner(settings, args, env["REDIS_URL"], data, fsync, embedded is not None), flush=True)
                while all(c.poll() is None for c in children):
                    time.sleep(0.5)
                dead = next(c for c in children if c.poll() is not None)
                print(f"livereco run: {names[dead.pid]} exited with {dead.returncode}; stopping", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("\nstopping...", file=sys.stderr, flush=True)
                return 0
            finally:
                with ignoring_signals(*_STOP_SIGNALS):  # a second Ctrl-C must not cut the shutdown short
                    stop_in_order(list(reversed(children)))  # producer, then server, then flow
                    if embedded is not None:
                        embedded.stop()  # Redis last: it fsyncs its append-only file as it stops
                    for thread in relays:
                        thread.join(timeout=2)
    except (DataDirInUse, RuntimeError, OSError) as exc:
        print(f"livereco run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before anything was started
        return 0


# --- entry point ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from flows import catalog_store, evaluation, experiment_report, export, inspect, replay, synthetic_shop

    parser = argparse.ArgumentParser(prog="livereco", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="embedded Redis + flow + server + synthetic producer; Ctrl-C stops all")
    _env_default(p, "--rate", env="LIVERECO_PRODUCER_RATE", type=float, default=200.0,
                 help="synthetic events per second (0: no producer)")
    _add_data_args(p)
    p.set_defaults(handler=_run_all)
    p = sub.add_parser("flow", help="run the dataflow (Bytewax runner options included)")
    _add_flow_args(p)
    p.set_defaults(handler=_run_flow)
    p = sub.add_parser("serve", help="run the HTTP server")
    _add_serve_args(p)
    p.set_defaults(handler=_run_serve)
    p = sub.add_parser("replay", help="stream a CSV/TSV/JSONL/.dat log into the event streams")
    replay.add_arguments(p)
    p.set_defaults(handler=replay.run)
    p = sub.add_parser("eval", help="replay a log through the dataflow and score it (HR@K, MRR@K) with baselines")
    evaluation.add_arguments(p)
    p.set_defaults(handler=evaluation.run)
    p = sub.add_parser("produce", help="stream a synthetic shop's events to the server")
    synthetic_shop.add_arguments(p)
    p.set_defaults(handler=synthetic_shop.run)
    p = sub.add_parser("catalog", help="load catalog items (CSV/JSONL) or merchandising rules into Redis")
    catalog_store.add_arguments(p)
    p.set_defaults(handler=catalog_store.run)
    p = sub.add_parser("export", help="every user's served list (filters and rules applied) as JSONL or CSV")
    export.add_arguments(p)
    p.set_defaults(handler=export.run)
    p = sub.add_parser("experiment", help="an experiment's report: CTR, conversion, revenue per user by variant, lift")
    experiment_report.add_arguments(p)
    p.set_defaults(handler=experiment_report.run)
    p = sub.add_parser("inspect", help="what Redis and the recovery store hold about a user (exit 1: something)")
    inspect.add_arguments(p)
    p.set_defaults(handler=inspect.run)
    p = sub.add_parser("redis", help="run an embedded redis-server in the foreground")
    p.add_argument("--port", type=int, default=6379, help="port on 127.0.0.1 (default 6379)")
    _add_data_args(p)
    p.set_defaults(handler=_run_redis)
    return parser


def _hide_secrets(url: str) -> None:
    """Keep ``url``'s password out of every log line and uncaught traceback this process prints."""
    secrets = url_secrets(url)
    if not secrets:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter(secrets))

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(scrub("".join(traceback.format_exception(kind, exc, tb)), secrets))

    def thread_excepthook(hook: threading.ExceptHookArgs) -> None:
        if hook.exc_value is not None:
            sys.stderr.write(f"Exception in thread {hook.thread.name if hook.thread else '?'}:\n")
            excepthook(hook.exc_type, hook.exc_value, hook.exc_traceback)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _hide_secrets(os.environ.get("REDIS_URL", ""))
    for warning in unknown_variables():
        print(f"livereco: warning: {warning}", file=sys.stderr)
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
                 if v is not None and args.command == "serve"}
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:
        print(f"livereco: {exc}", file=sys.stderr)
        return 2
    for key, env in (("host", "LIVERECO_HOST"), ("port", "LIVERECO_PORT")):
        if key in overrides:
            os.environ[env] = str(overrides[key])  # uvicorn workers read settings from the environment
    try:
        return int(args.handler(args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
