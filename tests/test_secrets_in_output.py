"""No output of ``livereco flow``, ``run`` or ``redis`` shows the password in ``REDIS_URL``, and each still says what is wrong.

Each command runs as a real process against a Redis that is not there (a
port nothing listens on), with a password in the URL, for a few seconds; all
it writes to stdout and stderr is captured and searched for the password, as
written and percent-decoded.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flows.embedded_redis import free_port
from flows.redis_client import SecretFilter, url_secrets
from tests.processes import ROOT


def dead_url() -> tuple[str, str, str]:
    """A URL with a password at a port nothing listens on: ``(url, password as written, as decoded)``."""
    token = uuid.uuid4().hex[:12]
    port = free_port()
    return f"redis://app:pa%40ss-{token}@127.0.0.1:{port}/0", f"pa%40ss-{token}", f"pa@ss-{token}"


def output_of(argv: list[str], env: dict[str, str], *, until: bytes, timeout_s: float = 60.0,
              linger_s: float = 2.0) -> bytes:
    """Run ``livereco ARGV`` until ``until`` shows in its output (then ``linger_s`` more), SIGTERM it; all it wrote."""
    log = Path(env["LIVERECO_DATA_DIR"]) / f"{argv[0]}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while until not in log.read_bytes() and process.poll() is None:
            assert time.monotonic() < deadline, f"no {until!r} within {timeout_s} s:\n{log.read_text()}"
            time.sleep(0.1)
        time.sleep(linger_s)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return log.read_bytes()


def env_for(url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": url, "LIVERECO_DATA_DIR": str(tmp_path / "data"),
            "LIVERECO_PORT": str(free_port()), "LIVERECO_FLOW_METRICS_PORT": str(free_port())}


def assert_hidden(output: bytes, *secrets: str) -> None:
    for secret in secrets:
        assert secret.encode() not in output, f"the password shows in:\n{output.decode(errors='replace')}"


@pytest.mark.slow
def test_flow_against_a_dead_redis_names_it_without_the_password(tmp_path: Path) -> None:
    url, written, decoded = dead_url()
    shown = url.replace(written, "***")
    output = output_of(["flow"], env_for(url, tmp_path), until=b"retrying")
    assert_hidden(output, written, decoded)
    assert f"cannot reach Redis at {shown}".encode() in output
    assert b"Connection refused" in output


def test_flow_refuses_an_unusable_url_without_the_password(tmp_path: Path) -> None:
    url, written, decoded = dead_url()
    bad = url.replace(url.rsplit(":", 1)[1], "not-a-port/0")
    done = subprocess.run([sys.executable, "-m", "flows.cli", "flow"], env=env_for(bad, tmp_path), cwd=ROOT,
                          capture_output=True, timeout=60)
    assert done.returncode == 2
    assert_hidden(done.stdout + done.stderr, written, decoded)
    assert b"REDIS_URL redis://app:***@127.0.0.1:not-a-port/0 cannot be used" in done.stderr


@pytest.mark.slow
def test_run_with_an_external_dead_redis_names_it_without_the_password(tmp_path: Path) -> None:
    url, written, decoded = dead_url()
    shown = url.replace(written, "***")
    # Long enough for the flow and the server to start and fail their first attempts.
    output = output_of(["run", "--rate", "0"], env_for(url, tmp_path), until=b"Redis failed", linger_s=3.0)
    assert_hidden(output, written, decoded)
    assert f"livereco run: cannot reach Redis at {shown}".encode() in output
    assert f"livereco flow: cannot reach Redis at {shown}".encode() in output


@pytest.mark.slow
def test_redis_command_shows_no_password_from_the_environment(tmp_path: Path) -> None:
    url, written, decoded = dead_url()
    output = output_of(["redis", "--port", str(free_port())], env_for(url, tmp_path), until=b"Ctrl-C stops it",
                       linger_s=0.0)
    assert_hidden(output, written, decoded)
    assert b"embedded Redis at redis://127.0.0.1:" in output


def test_log_records_and_tracebacks_lose_the_password() -> None:
    url, written, decoded = dead_url()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(SecretFilter(url_secrets(url)))
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    try:
        try:
            raise ConnectionError(f"Error connecting to {url} (password {decoded})")
        except ConnectionError:
            logger.exception("Redis at %s failed", url)
    finally:
        logger.removeHandler(handler)
    (text,) = records
    assert written not in text and decoded not in text
    assert text.startswith(f"Redis at {url.replace(written, '***')} failed")
    assert "ConnectionError: Error connecting to redis://app:***@" in text
