"""No password in anything ``livereco serve`` prints, and ``serving`` imports nothing from ``flows``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from flows.embedded_redis import free_port
from online.contract.redis_url import redact, redact_text
from tests.processes import ROOT

SECRET = "s3cr3t-Pa55"


def test_serving_imports_nothing_from_flows() -> None:
    offenders = []
    for path in sorted((ROOT / "serving").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in ("flows", "bytewax")]
    assert offenders == []


@pytest.mark.parametrize(("url", "password"), [
    (f"redis://user:{SECRET}@h:1/0", SECRET), (f"redis://:{SECRET}@h:1/0", SECRET),
    (f"redis+cluster://u:{SECRET}@a:1,b:2/", SECRET), (f"rediss://h:1/0?password={SECRET}&db=1", SECRET),
    (f"redis://u:{SECRET}@with:at@h:1/0", f"{SECRET}@with:at"), ("redis://u:p%40ss@h:1/0", "p@ss")])
def test_redaction_removes_the_password(url: str, password: str) -> None:
    assert password not in redact(url) and "***" in redact(url)
    message = redact_text(f"could not reach {url}: password {password!r} refused", url)
    assert password not in message and "***" in message


def test_serve_against_a_dead_redis_never_prints_the_password() -> None:
    """The real process, for a few seconds, against a Redis that is not there (it used to print it 34 times)."""
    port, dead = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": f"redis://user:{SECRET}@127.0.0.1:{dead}/0", "LIVERECO_PORT": str(port),
           "LIVERECO_FLOW_METRICS_PORT": "0"}
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, b"")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    answers = []
    try:
        deadline = time.monotonic() + 30  # start-up is slow on a busy machine: wait for the first message
        while b"waiting up to" not in b"".join(output) and time.monotonic() < deadline:
            time.sleep(0.1)
        until = time.monotonic() + 3
        while time.monotonic() < until:  # a few seconds of retries, and whatever answers on the port
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                    answers.append(answer.read())
            except urllib.error.HTTPError as exc:
                answers.append(exc.read())
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # uvicorn does not act on SIGTERM while its startup waits for Redis
            process.kill()
            process.wait()
        reader.join(timeout=5)
    out = b"".join(output)
    text = out.decode(errors="replace")
    assert "waiting up to" in text and "user:***@127.0.0.1" in text, text  # it did talk about the URL
    assert SECRET not in text
    assert all(SECRET.encode() not in a for a in answers)
    assert text.count("waiting up to") <= 2, text  # once, then every 10 s: not at every retry
