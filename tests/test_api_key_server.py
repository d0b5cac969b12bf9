"""API keys and rate limits on the real server: 401 without a key, 403 for the wrong scope, rotation, 429 per key,
never a key in a log line, and no open server on a public address."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest

from benchmarks.cluster_check import flow_env
from flows.embedded_redis import free_port
from online.contract import Settings
from tests.conftest import LiveServer
from tests.processes import ROOT

READ, WRITE, ADMIN, OLD_READ = ("read-key-" + "1" * 16, "write-key-" + "2" * 16, "admin-key-" + "3" * 16,
                                "old-read-" + "4" * 16)
EVENT = orjson.dumps({"user_id": "kim", "item_id": "sku-1", "type": "view"})


@pytest.fixture()
def keyed_server(settings: Settings) -> Iterator[LiveServer]:
    keyed = dataclasses.replace(settings, api_keys=f"read:{READ},read:{OLD_READ},write:{WRITE},admin:{ADMIN}",
                                rate_limit=20.0, rate_burst=10)
    server = LiveServer(keyed).start()
    yield server
    server.stop()


def _get(server: LiveServer, path: str, key: str | None = None, header: str = "authorization") -> int:
    headers = {} if key is None else {header: f"Bearer {key}" if header == "authorization" else key}
    return server.request("GET", path, headers=headers)[0]


def _post(server: LiveServer, key: str | None) -> int:
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
    return server.request("POST", "/v1/events", EVENT, headers)[0]


def test_scopes_on_every_kind_of_endpoint(keyed_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recs = "/v1/users/kim/recommendations?n=3"
    status, headers, body = keyed_server.request("GET", recs)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert orjson.loads(body)["error"]["code"] == "unauthorized"
    assert _get(keyed_server, recs, "not-a-key-at-all-000") == 401
    assert _get(keyed_server, recs, READ) == 200
    assert _get(keyed_server, recs, OLD_READ) == 200  # a rotated key works beside the new one
    assert _get(keyed_server, recs, READ, header="x-api-key") == 200
    assert _get(keyed_server, recs, WRITE) == 403  # a producer's key does not read
    assert _get(keyed_server, recs, ADMIN) == 200  # admin opens everything
    assert _post(keyed_server, None) == 401
    assert _post(keyed_server, READ) == 403  # read key on a write endpoint
    assert _post(keyed_server, WRITE) == 202
    assert _post(keyed_server, ADMIN) == 202
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert _get(keyed_server, open_path) == 200, open_path
    document = orjson.loads(keyed_server.request("GET", "/openapi.json")[2])
    operation = document["paths"]["/v1/events"]["post"]
    assert {"bearer": ["write"]} in operation["security"] and "401" in operation["responses"]
    logged = caplog.text + repr(keyed_server.app.api_keys) + repr(keyed_server.app.settings)
    for key in (READ, WRITE, ADMIN, OLD_READ):
        assert key not in logged


def test_a_flood_from_one_key_is_answered_429_while_another_key_is_served(keyed_server: LiveServer) -> None:
    statuses = [_get(keyed_server, "/v1/trending?n=1", READ) for _ in range(60)]
    assert statuses.count(429) >= 30 and statuses[:10] == [200] * 10
    status, headers, _ = keyed_server.request("GET", "/v1/trending?n=1", headers={"authorization": f"Bearer {READ}"})
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert _get(keyed_server, "/v1/trending?n=1", OLD_READ) == 200  # another key still served
    metrics = keyed_server.request("GET", "/metrics")[2].decode()
    assert "livereco_serving_rate_limited_total" in metrics


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_an_open_server_on_a_public_address_refuses_to_start(redis_url: str, namespace: str) -> None:
    env = {**flow_env(redis_url, namespace, 0), "LIVERECO_HOST": "0.0.0.0", "LIVERECO_PORT": str(free_port())}
    done = _serve(env)
    assert done.returncode == 2
    assert "no API keys" in done.stderr and "LIVERECO_INSECURE_OPEN=1" in done.stderr
    bad = _serve({**env, "LIVERECO_API_KEYS": "read:short"})
    assert bad.returncode == 2 and "at least 16" in bad.stderr and "short" not in bad.stderr.split("characters")[-1]
