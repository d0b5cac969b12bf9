"""The catalog in a real Redis: writes, patches, bulk, the change stream, the server's replica, the loader."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from flows.catalog_store import CatalogStore, load_catalog, parse_columns, run, run_steps
from online.catalog.item import CatalogError, parse_item
from online.catalog.protocol import CatalogCommands, Steps
from online.catalog.rules import parse_rules
from online.catalog.snapshot import CatalogReplica
from online.contract import RedisKeys


@pytest.fixture
def store(redis_client: redis.Redis, keys: RedisKeys) -> CatalogStore:
    return CatalogStore(redis_client, keys)


def test_put_get_delete_and_versions(store: CatalogStore, redis_client: redis.Redis, keys: RedisKeys) -> None:
    item = parse_item({"item_id": "t1", "title": "Treadmill", "categories": ["sports/fitness/treadmills"], "price": 499})
    assert store.put(item) == 1
    assert store.put(item) == 0  # the same again: no change, no version
    assert store.get("t1") == item
    # readable by a person: one JSON document per item
    assert redis_client.hget(keys.catalog_items(), "t1") == (
        b'{"item_id":"t1","title":"Treadmill","categories":["sports/fitness/treadmills"],"price":499.0}')
    assert store.delete("t1") is True
    assert store.delete("t1") is False
    assert store.get("t1") is None
    assert store.version() == 2
    entries = redis_client.xrange(keys.catalog_changes())
    assert [entry_id for entry_id, _ in entries] == [b"1-0", b"2-0"]
    assert entries[1][1][b"item"] == b"" and entries[1][1][b"id"] == b"t1"


def test_patch_merges_and_names_the_bad_field(store: CatalogStore) -> None:
    store.put(parse_item({"item_id": "s1", "brand": "acme", "price": 80, "attributes": {"size": 42, "color": "red"}}))
    changed = store.patch("s1", {"in_stock": False, "brand": None, "attributes": {"color": None}})
    assert changed is not None and not changed.in_stock and changed.brand is None
    assert changed.attributes == {"size": 42}
    assert store.get("s1") == changed
    assert store.patch("nobody", {"price": 1}) is None
    with pytest.raises(CatalogError) as error:
        store.patch("s1", {"price": -1})
    assert error.value.field == "price"
    assert store.get("s1") == changed  # nothing half-applied


def test_patch_retries_when_the_item_changes_under_it(redis_client: redis.Redis, keys: RedisKeys) -> None:
    store = CatalogStore(redis_client, keys)
    store.put(parse_item({"item_id": "a", "price": 1}))
    commands = CatalogCommands(keys)
    steps = commands.patch("a", {"brand": "acme"}, now_ms=1)
    batch = next(steps)
    pipe = redis_client.pipeline(transaction=False)
    for command in batch:
        pipe.execute_command(*command)
    replies = pipe.execute(raise_on_error=False)
    store.put(parse_item({"item_id": "a", "price": 2}))  # someone else writes between the read and the write
    patched = run_remaining(redis_client, steps, replies)
    assert patched is not None and patched.price == 2.0 and patched.brand == "acme"
    stored = store.get("a")
    assert stored is not None and stored.price == 2.0 and stored.brand == "acme"


def run_remaining(client: Any, steps: Steps[Any], replies: list[Any]) -> Any:
    try:
        batch = steps.send(replies)
        while True:
            pipe = client.pipeline(transaction=False)
            for command in batch:
                pipe.execute_command(*command)
            batch = steps.send(pipe.execute(raise_on_error=False))
    except StopIteration as done:
        return done.value


def test_bulk_writes_good_lines_and_reports_bad_ones(store: CatalogStore) -> None:
    body = b'{"item_id": "a", "price": 1}\n{"item_id": "b", "price": "cheap"}\n\n{"item_id": "c"}\nnot json\n'
    result = store.write_bulk(body)
    answer = result.to_dict()
    assert (answer["written"], answer["rejected"]) == (2, 2)
    assert [(error["index"], error["field"]) for error in answer["errors"]] == [(2, "price"), (5, "line")]
    assert store.get("a") is not None and store.get("b") is None and store.get("c") is not None
    again = store.write_bulk(b'[{"item_id": "a", "price": 1}, {"item_id": "c", "price": 3}]')
    assert (again.written, again.unchanged) == (1, 1)


def test_replica_follows_changes_and_reloads_after_a_gap(redis_client: redis.Redis, keys: RedisKeys) -> None:
    store = CatalogStore(redis_client, keys, changes_maxlen=10)
    store.put_many([parse_item({"item_id": f"i{n}", "brand": "acme"}) for n in range(50)])
    replica = CatalogReplica(CatalogCommands(keys), scan_count=7)
    assert run_steps(redis_client, replica.refresh()) is True
    assert len(replica.snapshot) == 50 and replica.snapshot.version == 50 and replica.full_loads == 1
    assert run_steps(redis_client, replica.refresh()) is False  # nothing new: one small read
    store.patch("i3", {"in_stock": False})
    store.delete("i4")
    assert run_steps(redis_client, replica.refresh()) is True
    snapshot = replica.snapshot
    assert not snapshot.available(snapshot.row("i3"), now=1.7e9) and "i4" not in snapshot and replica.full_loads == 1
    # more changes than the stream keeps: the replica notices the gap and reloads
    store.put_many([parse_item({"item_id": f"n{n}"}) for n in range(40)])
    redis_client.xtrim(keys.catalog_changes(), maxlen=5)
    run_steps(redis_client, replica.refresh())
    assert replica.full_loads == 2 and len(replica.snapshot) == 89 and replica.snapshot.version == store.version()


async def run_steps_async(client: redis.asyncio.Redis, steps: Steps[Any]) -> Any:
    """The server's driver: :func:`flows.catalog_store.run_steps` with ``await``."""
    try:
        batch = next(steps)
        while True:
            pipe = client.pipeline(transaction=False)
            for command in batch:
                pipe.execute_command(*command)
            batch = steps.send(await pipe.execute(raise_on_error=False))
    except StopIteration as done:
        return done.value


def test_the_same_operations_run_on_redis_asyncio(redis_url: str, keys: RedisKeys) -> None:
    async def scenario() -> tuple[Any, ...]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            commands = CatalogCommands(keys)
            version = await run_steps_async(client, commands.put(parse_item({"item_id": "x", "price": 5}), 1))
            patched = await run_steps_async(client, commands.patch("x", {"price": 6}, 2))
            replica = CatalogReplica(commands)
            await run_steps_async(client, replica.refresh())
            return version, patched.price, replica.snapshot.price_of(replica.snapshot.row("x"))
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == (1, 6.0, 6.0)


def test_rules_are_stored_versioned(store: CatalogStore) -> None:
    assert store.get_rules().version == 0
    rules = parse_rules({"rules": [{"kind": "block", "items": ["x"]}, {"kind": "new_arrivals", "days": 7}]})
    assert store.put_rules(rules) == 1
    assert store.put_rules(rules) == 2
    stored = store.get_rules()
    assert stored.version == 2 and stored.rules == rules.rules


def test_load_csv_with_column_mapping_and_bad_lines(tmp_path: Path, store: CatalogStore) -> None:
    path = tmp_path / "items.csv"
    path.write_text("sku,name,path,price,stock,colour\n"
                    "t1,Treadmill,sports/fitness/treadmills,499,yes,black\n"
                    "t2,Broken,sports//x,10,yes,\n"
                    "t3,Mat,sports/fitness/mats,cheap,no,blue\n"
                    "t4,Band,sports/fitness/bands,9.5,no,\n")
    columns = parse_columns("item_id=sku,title=name,categories=path,price=price,in_stock=stock,attr.color=colour")
    report = load_catalog(path, store, columns, progress=False)
    assert (report.written, report.rejected) == (2, 2)
    assert report.errors == [f"{path}:3: categories[0]: 'sports//x': an empty level (a leading, trailing or double '/')",
                             f"{path}:4: price: 'cheap' is not a number"]
    band = store.get("t4")
    assert band is not None and band.price == 9.5 and not band.in_stock and band.attributes == {}
    assert store.get("t1") is not None and store.get("t1").attributes == {"color": "black"}  # type: ignore[union-attr]


def test_cli_loads_jsonl(tmp_path: Path, settings: Any, store: CatalogStore, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from flows.catalog_store import add_arguments

    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "a", "tags": ["new"]}\n{"item_id": "b", "colour": 1}\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["load", str(path), "--no-progress"]), settings) == 0
    out = capsys.readouterr()
    assert "1 items written, 0 unchanged, 1 rejected" in out.out
    assert "items.jsonl:2: colour: is not a known field" in out.err
    assert store.get("a") is not None
