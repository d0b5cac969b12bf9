"""schemathesis against the real ``livereco serve`` process: the served OpenAPI document, every check.

All of schemathesis's checks (``--checks all``: no 5xx, statuses and content types and headers and bodies
as documented, valid requests accepted, invalid ones refused, 405 with ``Allow`` for methods a path does not
have, ...), in its examples, coverage and fuzzing phases, valid and invalid data, at most 50 cases per
operation, derandomized so a run is repeatable. No flow runs: the answers that depend on it (a profile's
404, a stalled flow's 503 on /readyz) are among the documented ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.embedded_redis import free_port
from tests.processes import livereco_process, process_env

ADMIN_KEY, READ_KEY = "schemathesis-admin-" + "a" * 16, "schemathesis-read-" + "r" * 16

ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = 50
TIME_BUDGET_S = 480


@pytest.mark.slow
def test_the_served_openapi_document_holds_against_the_real_server(redis_url: str, namespace: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(redis_url, namespace, port, free_port(), LIVERECO_API_KEYS=f"admin:{ADMIN_KEY},read:{READ_KEY}",
                      LIVERECO_RATE_LIMIT="0")  # every operation behind keys, as in production; no 429s mid-run
    with livereco_process(env, "serve", ready_url=f"{base}/readyz"):
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
             "run", f"{base}/openapi.json", "--checks", "all", "--header", f"Authorization: Bearer {ADMIN_KEY}",
             "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic", "--seed", "15",
             "--no-color", "--max-failures", "20", "--request-timeout", "10"],
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
            cwd=ROOT, capture_output=True, text=True, timeout=TIME_BUDGET_S)
    output = run.stdout + run.stderr
    sys.stdout.write(output[-1200:])  # the summary: phases, checks, cases generated (shown with -s or on failure)
    assert run.returncode == 0, output[-8000:]
    cases = re.search(r"(\d+) generated", output) or re.search(r"(\d+) test cases", output)
    assert cases is not None and int(cases.group(1)) >= 9 * 10, output[-3000:]
