"""``livereco redis`` and ``livereco run`` keep their data across a stop, and no stop leaves a process behind.

Real processes throughout: each test starts the CLI on a data directory of
its own, writes data, stops it with a signal, checks that every process it
had started is gone (from ``/proc``: the children live in sessions of their
own, and once the parent is gone they would be adopted by init, so they are
recorded while the parent runs), then starts again on the same directory and
finds the data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import redis

from flows.embedded_redis import free_port
from flows.recovery import resume_state
from tests.processes import ROOT, get, post

pytestmark = pytest.mark.slow

STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (parent links read from ``/proc/<pid>/stat``)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _default_signals() -> None:
    # A test run in the background may ignore SIGINT/SIGHUP, and an ignored signal is inherited: undo that.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class Running:
    """A ``livereco`` process whose output a thread keeps reading (a full pipe would stall it)."""

    def __init__(self, env: dict[str, str], argv: tuple[str, ...]):
        self.process = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=env, cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_default_signals)
        self.lines: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, b""):
            self.lines.append(line)

    @property
    def output(self) -> bytes:
        return b"".join(self.lines)

    def wait_for(self, text: bytes, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output:
            assert self.process.poll() is None or self.reader.is_alive(), \
                f"exited with {self.process.returncode}:\n{self.output.decode(errors='replace')}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s:\n{self.output.decode(errors='replace')}"
            time.sleep(0.05)


@contextmanager
def livereco(env: dict[str, str], *argv: str, until: bytes) -> Iterator[Running]:
    """``livereco ARGV``, once its output shows ``until``; killed, if still running, when the block ends."""
    running = Running(env, argv)
    try:
        running.wait_for(until)
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
        running.process.wait()
        running.reader.join(timeout=5)


def stop_and_check_nothing_left(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum``, wait for the exit, and assert that every process it had started has gone with it."""
    children = descendants(process.pid)
    assert children, "the CLI had started no process"
    process.send_signal(signum)
    process.wait(timeout=30)
    if signum != signal.SIGKILL:
        assert process.returncode in (0, 130), f"exit status {process.returncode} after {signum!r}"
    deadline = time.monotonic() + 5  # after SIGKILL the children get SIGTERM from the kernel and stop by themselves
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for pid in children if alive(pid)}
    assert not left, f"left running after {signal.Signals(signum).name}: {left}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("REDIS_URL", None)
    return env


@pytest.mark.parametrize("signum", [*STOP_SIGNALS, signal.SIGKILL], ids=lambda s: signal.Signals(s).name)
def test_livereco_redis_keeps_its_data_and_leaves_no_redis_server(tmp_path: Path, signum: int) -> None:
    data, port = tmp_path / "data", free_port()
    env = cli_env(LIVERECO_DATA_DIR=str(data))
    with livereco(env, "redis", "--port", str(port), until=b"Ctrl-C stops it") as running:
        assert str(data / "redis").encode() in running.output and b"appendfsync everysec" in running.output
        client = redis.Redis(port=port)
        client.set("kept", b"across restarts")
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        stop_and_check_nothing_left(running.process, signum)
    assert (data / "redis" / "appendonly.aof").stat().st_size > 0
    with livereco(env, "redis", "--port", str(port), "--appendfsync", "always", until=b"Ctrl-C stops it") as running:
        client = redis.Redis(port=port)
        assert client.get("kept") == b"across restarts"
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        client.close()
        stop_and_check_nothing_left(running.process, signal.SIGTERM)


def test_livereco_run_keeps_lists_and_model_state_refuses_a_second_run_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = cli_env(LIVERECO_PORT=str(port), LIVERECO_FLOW_METRICS_PORT=str(free_port()), LIVERECO_PARTITIONS="2",
                  BYTEWAX_SNAPSHOT_INTERVAL="0.5")
    base = f"http://127.0.0.1:{port}"
    user = "comes-back"

    def recommendations() -> dict[str, object]:
        return dict(orjson.loads(get(f"{base}/v1/users/{user}/recommendations?n=5")[1]))

    argv = ("run", "--rate", "0", "--data-dir", str(data))
    with livereco(env, *argv, until=b"Ctrl-C stops everything") as first:
        assert f"to start fresh, stop livereco and delete {data}".encode() in first.output
        others = [{"user_id": f"other{u}", "item_id": f"sku-{(u + k) % 7}", "type": "view", "ts": time.time() - 60 + k}
                  for u in range(10) for k in range(3)]
        mine = [{"user_id": user, "item_id": f"sku-{k}", "type": "view"} for k in (1, 2, 3)]
        assert post(f"{base}/v1/events", orjson.dumps(others + mine))[0] == 202
        deadline = time.monotonic() + 10
        while recommendations()["source"] != "personal":
            assert time.monotonic() < deadline, "no personal list within 10 s"
            time.sleep(0.05)
        # Trending's writes can land a batch after the user's list: the list is taken once it has stopped changing.
        listed, steady_since = recommendations()["items"], time.monotonic()
        while time.monotonic() - steady_since < 1.0:
            assert time.monotonic() < deadline + 10, "the list kept changing"
            time.sleep(0.1)
            now_listed = recommendations()["items"]
            if now_listed != listed:
                listed, steady_since = now_listed, time.monotonic()
        while user not in resume_state(data / "recovery", "livereco.user_history"):  # a snapshot holds the user
            assert time.monotonic() < deadline + 10, "the user's history was never snapshotted"
            time.sleep(0.1)

        second = subprocess.run([sys.executable, "-m", "flows.cli", *argv], env=env, cwd=ROOT, capture_output=True,
                                timeout=60)
        assert second.returncode == 1
        assert f"{data / 'recovery'} is in use by livereco run (pid {first.process.pid})".encode() in second.stderr
        stop_and_check_nothing_left(first.process, signal.SIGTERM)

    with livereco(env, *argv, until=b"Ctrl-C stops everything") as again:
        again.wait_for(b"resuming from its last snapshot")
        answer = recommendations()
        assert answer["source"] == "personal" and answer["items"] == listed
        # Killed outright it cannot stop them: the kernel does (PR_SET_PDEATHSIG). Ctrl-C: tests/test_cli.py.
        stop_and_check_nothing_left(again.process, signal.SIGKILL)
