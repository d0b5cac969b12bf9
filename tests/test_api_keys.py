"""API keys and rate limits, as pure logic (the server's use of them is tested against the real server)."""

from __future__ import annotations

import time

import pytest

from online.contract import Settings
from online.contract.api_keys import ApiKeys, key_id
from online.contract.rate_limit import RateLimiter

READ, WRITE, ADMIN, OLD_READ = ("r" * 20, "w" * 20, "a" * 20, "o" * 20)


@pytest.fixture()
def keys() -> ApiKeys:
    return ApiKeys.parse(f"read:{READ},read:{OLD_READ}", f"# rotated keys\nwrite:{WRITE}\nadmin:{ADMIN}  # the ops team\n")


@pytest.mark.parametrize(("sent", "scope", "status"), [
    (None, "read", 401), ("Bearer " + "x" * 20, "read", 401), ("Basic " + READ, "read", 401),
    ("Bearer " + READ, "read", 200), ("bearer  " + OLD_READ, "read", 200), ("Bearer " + READ, "write", 403),
    ("Bearer " + READ, "admin", 403), ("Bearer " + WRITE, "read", 403), ("Bearer " + WRITE, "write", 200),
    ("Bearer " + WRITE, "admin", 403), ("Bearer " + ADMIN, "admin", 200), ("Bearer " + ADMIN, "read", 200),
])
def test_each_scope_opens_its_own_operations(keys: ApiKeys, sent: str | None, scope: str, status: int) -> None:
    assert keys.check(sent, None, scope).status == status


def test_x_api_key_works_and_authorization_wins(keys: ApiKeys) -> None:
    assert keys.check(None, WRITE, "write").status == 200
    assert keys.check("Bearer " + READ, WRITE, "write").status == 403


def test_no_key_is_ever_in_a_message_or_a_repr(keys: ApiKeys) -> None:
    texts = [repr(keys), *(keys.check(f"Bearer {k}", None, s).message for k in (READ, WRITE, ADMIN, "z" * 20)
                           for s in ("read", "write", "admin"))]
    for key in (READ, WRITE, ADMIN, OLD_READ):
        assert all(key not in text for text in texts)
    assert key_id(READ) in repr(keys)
    settings = Settings.from_env({"LIVERECO_API_KEYS": f"read:{READ}"})
    assert READ not in repr(settings)


@pytest.mark.parametrize(("spec", "message"), [
    ("read", "entry 1: expected scope:key"), ("owner:" + "k" * 20, "unknown scope 'owner'"),
    ("read:short", "the key has 5 characters"), (f"read:{READ},write:{'é' * 20}", r"entry 2 \(write\): the key must be printable ASCII"),
])
def test_bad_configuration_is_refused_by_entry_without_the_key(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        ApiKeys.parse(spec)
    assert "short" not in str(raised.value) and READ not in str(raised.value)


def test_an_unreadable_key_file_is_named(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="LIVERECO_API_KEYS_FILE='/nonexistent/keys': cannot read it"):
        ApiKeys.from_settings("", "/nonexistent/keys")


def test_rate_limit_allows_the_rate_and_the_burst_then_says_when() -> None:
    limiter = RateLimiter(rate=100.0, burst=10)
    now = 1000.0
    allowed = [limiter.allow("k", now) == 0.0 for _ in range(20)]
    assert allowed.count(True) == 10
    assert limiter.allow("k", now) == pytest.approx(0.01)
    assert limiter.allow("k", now + 0.01) == 0.0  # one more after 1/rate
    # Over a second at a steady 200 requests/s, about 100 pass (plus the burst).
    passed = sum(limiter.allow("steady", now + n / 200) == 0.0 for n in range(200))
    assert 100 <= passed <= 110


def test_rate_limit_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=1000)
    for n in range(50_000):
        limiter.allow(f"client-{n}", 0.0)
    assert len(limiter) == 1000


def test_rate_limit_costs_about_a_microsecond() -> None:
    limiter = RateLimiter(rate=1e9, burst=1)
    started = time.perf_counter()
    for n in range(100_000):
        limiter.allow(f"k{n % 100}", n * 1e-6)
    per_call_us = (time.perf_counter() - started) / 100_000 * 1e6
    assert per_call_us < 20  # a bound, not a benchmark: ~0.5 us on the dev machine
