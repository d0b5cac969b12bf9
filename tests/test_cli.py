"""The CLI: ``livereco run`` brings the whole system up and Ctrl-C takes every process down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from flows.cli import build_parser
from flows.embedded_redis import free_port
from tests.processes import ROOT, get, post


def test_flags_show_their_environment_variables() -> None:
    parser = build_parser()
    flow_help = " ".join(parser._subparsers._group_actions[0].choices["flow"].format_help().split())  # type: ignore[union-attr]
    assert "[env: BYTEWAX_WORKERS_PER_PROCESS]" in flow_help
    assert "[env: BYTEWAX_RECOVERY_DIRECTORY]" in flow_help


def test_run_and_redis_take_a_data_dir_and_an_fsync_policy() -> None:
    parser = build_parser()
    for command in ("run", "redis"):
        text = " ".join(parser._subparsers._group_actions[0].choices[command].format_help().split())  # type: ignore[union-attr]
        assert "[env: LIVERECO_DATA_DIR]" in text and "[env: LIVERECO_REDIS_APPENDFSYNC]" in text
    args = parser.parse_args(["redis", "--data-dir", "/tmp/x", "--appendfsync", "always"])
    assert (args.data_dir, args.appendfsync) == (Path("/tmp/x"), "always")
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--appendfsync", "sometimes"])


def test_bad_setting_is_named(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import main

    monkeypatch.setenv("LIVERECO_PARTITIONS", "many")
    assert main(["serve"]) == 2
    assert "LIVERECO_PARTITIONS='many'" in capsys.readouterr().err


def child_pids(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    pairs = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    return {child for child, parent in pairs if parent == pid}


@pytest.mark.slow
def test_run_serves_personal_lists_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "LIVERECO_PORT": str(port), "LIVERECO_FLOW_METRICS_PORT": str(metrics_port),
           "PYTHONPATH": str(ROOT), "LIVERECO_DATA_DIR": str(tmp_path / "data")}
    env.pop("REDIS_URL", None)  # the default: an embedded Redis
    run = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--rate", "100"], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        assert run.stdout is not None
        deadline = time.monotonic() + 60
        seen = b""
        while b"Ctrl-C stops everything" not in seen:
            assert time.monotonic() < deadline and run.poll() is None, seen.decode(errors="replace")
            seen += run.stdout.readline()
        assert b"curl" in seen
        started = child_pids(run.pid)
        assert len(started) >= 4  # redis, flow, server, producer
        user = f"fresh-{time.time_ns()}"
        views = [{"user_id": user, "item_id": f"sku-{k:05d}", "type": "view"} for k in (1, 2, 3)]
        assert post(f"{base}/v1/events", orjson.dumps(views))[0] == 202
        posted = time.monotonic()
        while orjson.loads(get(f"{base}/v1/users/{user}/recommendations")[1])["source"] != "personal":
            assert time.monotonic() - posted < 1.0, "no personal list within a second"
            time.sleep(0.01)
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=30)
    time.sleep(0.5)
    alive = [pid for pid in started if os.path.exists(f"/proc/{pid}") and
             Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
    assert alive == [], f"processes left running after Ctrl-C: {alive}"


def test_serve_stopped_while_waiting_for_redis_exits_at_once_and_cleanly() -> None:
    """A SIGTERM (an orchestrator scaling down, a rollout) while Redis is still away: exit 0 now, not after
    the wait, and not the "could not start" status 3 that would page someone."""
    dead = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{dead}", "LIVERECO_PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    out = b""
    assert process.stdout is not None
    while b"waiting up to" not in out and time.monotonic() < deadline:
        out += process.stdout.readline()
    assert b"waiting up to" in out, out
    process.send_signal(signal.SIGTERM)
    start = time.monotonic()
    out += process.communicate(timeout=10)[0]
    assert process.returncode == 0, out
    assert time.monotonic() - start < 5
