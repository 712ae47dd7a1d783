"""Scenario 12: random input to put_all (on a real server) and to the config loader."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import Record, StoreError, SyncRedisStore
from tests.reliability.harness import REPORT, ReportRow
from tests.servers import RedisServer, redis_server
from worker.config import Config, load_config
from worker.errors import ConfigError

NAMESPACE = "fuzz"
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_messages: list[str] = []  # every ConfigError's text: each must say what is wrong
_counts = {"stored": 0, "refused": 0, "configs": 0, "config_errors": 0}


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_store(fuzz_server: RedisServer) -> Iterator[SyncRedisStore]:
    with SyncRedisStore.from_url(fuzz_server.url, namespace=NAMESPACE) as store:
        yield store


@pytest.fixture(scope="module")
def fuzz_client(fuzz_server: RedisServer) -> Iterator[redis.Redis]:
    with fuzz_server.client() as client:
        yield client


def odd(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well-typed values, sometimes of the wrong type altogether."""
    wrong = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.floats(), st.binary())
    return st.one_of(strategy, strategy, strategy, wrong)


moments = st.one_of(
    st.none(), st.datetimes(timezones=st.just(UTC)), st.datetimes(), st.just("2024-01-01")
)
records = st.builds(
    Record,
    task_id=odd(st.text(max_size=6)),
    type=odd(st.integers(-1, 2**32 + 1)),
    data=odd(st.binary(max_size=64)),
    reference_id=odd(st.one_of(st.none(), st.text(max_size=4))),
    state=odd(st.integers(-1, 4)),
    failed_attempts=odd(st.integers(-1, 2**32)),
    next_attempt_at=moments,
    created_at=moments,
)


valid_records = st.builds(
    Record,
    task_id=st.uuids().map(str),
    type=st.integers(1, 2**32 - 1),
    data=st.binary(max_size=64),
    reference_id=st.one_of(st.none(), st.text(max_size=4)),
    state=st.integers(1, 3),
    failed_attempts=st.integers(0, 2**32 - 1),
    next_attempt_at=st.one_of(
        st.none(),
        st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)),
    ),
)


def snapshot(client: redis.Redis) -> tuple[Any, ...]:
    tag = "{" + NAMESPACE + "}"
    indexes = sorted(client.scan_iter(match=f"{tag}:idx:*"))
    return (client.hgetall(f"{tag}:tasks"), client.get(f"{tag}:seq"), indexes)


@FUZZ
@given(batch=st.lists(st.one_of(valid_records, valid_records, records), max_size=4))
def test_put_all_stores_or_refuses_cleanly(
    fuzz_store: SyncRedisStore, fuzz_client: redis.Redis, batch: list[Record]
) -> None:
    """Random batches: either every record is stored as given, or a StoreError and not a
    single key changed; never another exception."""
    before = snapshot(fuzz_client)
    try:
        fuzz_store.put_all(*batch)
    except StoreError:
        _counts["refused"] += 1
        assert snapshot(fuzz_client) == before
        return
    _counts["stored"] += 1
    for record in batch:
        stored = fuzz_store.get_by_task_id(record.task_id)
        assert (stored.type, stored.data, stored.reference_id) == (
            record.type,
            record.data,
            record.reference_id,
        )
        assert (stored.state, stored.failed_attempts) == (record.state, record.failed_attempts)


scalars = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.text(max_size=4), max_size=3),
    st.lists(st.integers(), max_size=2),
)
keys = st.sampled_from(
    [
        "url",
        "namespace",
        "concurrency",
        "batch",
        "lease",
        "shutdown_grace",
        "poll_interval",
        "max_attempts",
        "initial_delay",
        "max_delay",
        "timeout",
        "modules",
        "host",
        "port",
        "level",
        "format",
        "data_dir",
        "max_data_bytes",
        "bogus",
    ]
)
sections = st.sampled_from(
    ["redis", "worker", "retry", "handlers", "metrics", "log", "embedded", "store", "bogus"]
)
tables = st.dictionaries(keys, scalars, max_size=4)
documents = st.dictionaries(
    sections,
    st.one_of(tables, scalars),
    max_size=4,
).flatmap(
    lambda doc: st.one_of(
        st.just(doc),
        st.dictionaries(st.text(max_size=4), tables, max_size=2).map(
            lambda types: {**doc, "types": types}
        ),
    )
)
env_names = st.builds(
    lambda section, key: f"RETRYD_{section}_{key}".upper(), sections, keys
) | st.just("RETRYD_TYPES_7_TIMEOUT")


@settings(max_examples=300, deadline=None)
@given(document=documents)
def test_config_from_mapping_accepts_or_names_the_problem(document: dict[str, Any]) -> None:
    """Random TOML-shaped documents: a Config, or a ConfigError; never another exception."""
    _counts["configs"] += 1
    try:
        Config.from_mapping(document)
    except ConfigError as error:
        _counts["config_errors"] += 1
        _messages.append(str(error))


@settings(max_examples=300, deadline=None)
@given(env=st.dictionaries(env_names, st.text(max_size=10), max_size=3))
def test_config_env_overrides_accept_or_name_the_problem(env: dict[str, str]) -> None:
    """Random RETRYD_* variables: a Config, or a ConfigError naming the problem."""
    _counts["configs"] += 1
    try:
        load_config(None, env)
    except ConfigError as error:
        _counts["config_errors"] += 1
        _messages.append(str(error))


def test_fuzz_report() -> None:
    """Every ConfigError named its problem; adds the figures to the suite's table (runs
    after the fuzz tests above)."""
    assert all(len(m) > 10 for m in _messages), [m for m in _messages if len(m) <= 10]
    REPORT.append(
        ReportRow(
            "12 fuzz put_all + config",
            _counts["stored"] + _counts["refused"],
            0,
            0,
            "-",
            f"put_all: {_counts['stored']} stored, {_counts['refused']} refused cleanly; "
            f"config: {_counts['configs']} inputs, {_counts['config_errors']} ConfigError",
        )
    )
