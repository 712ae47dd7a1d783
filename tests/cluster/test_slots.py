"""Every key a script touches lies in one hash slot, so every script runs on Redis Cluster.

The keys a script is given come from store/_commands.py (the very calls RedisStore sends); the
keys a script builds are found by reading its Lua: any `KEYS[i] .. 'suffix'` or
`index_key(KEYS[i], ...)`. A new script, or a key built some other way, fails here first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from redis.crc import key_slot

from store import Change, Ordering, Rate, Record, State, TypeCursor
from store._commands import Call, Commands
from store._keys import Keys
from store._scripts import SCRIPT_NAMES, ScriptName, source

NAMESPACES = ["retryd", "billing", "a", "ns:with:colons", "x" * 128]
TYPES = [1, 7, 4294967295]
T0 = datetime(2024, 5, 17, tzinfo=UTC)


def stored(task_id: str = "t") -> Record:
    return Record(task_id=task_id, type=7, data=b"d", next_attempt_at=T0, id=1, version=2)


CALLS: dict[ScriptName, Callable[[Commands], Call]] = {
    "put_all": lambda c: c.put_all([Record(task_id="t", type=7, data=b"d")]),
    "update": lambda c: c.update(stored()),
    "get_ready": lambda c: c.get_ready(State.PENDING, T0, None, 10, Ordering.ASC),
    "list_type": lambda c: c.list_type(State.FAILED, 7, TypeCursor(T0, "t"), 10, Ordering.DESC),
    "count": lambda c: c.count(State.PENDING),
    "claim": lambda c: c.claim({7: 3, 8: 3}, 10, 30.0, {7: 2}, {8: Rate(5.0, 5)}),
    "settle": lambda c: c.settle([Change(stored(), State.CONFIRMED, 0)]),
    "extend": lambda c: c.extend([stored()], 30.0),
    "stats": lambda c: c.stats(),
    "inspect": lambda c: c.inspect("t"),
    "delete": lambda c: c.delete(["t", "u"]),
    "cancel": lambda c: c.cancel(["t", "u"]),
    "retry": lambda c: c.retry(["t", "u"]),
    "retry_failed": lambda c: c.retry_failed(7, 10),
    "prune": lambda c: c.prune(60.0, 60.0, 10),
    "count_by_type": lambda c: c.count_by_type(),
    "beat": lambda c: c.beat("worker-1", b"{}", 60.0),
    "beats": lambda c: c.beats(60.0, 100),
    "relist": lambda c: c.relist([b"t", b"u"]),
}


# `index_key(KEYS[2], ...)` and `KEYS[2] .. 'damaged'`: the two ways our scripts build a key.
INDEX_KEY = re.compile(r"index_key\(\s*KEYS\[(\d+)\]")
CONCAT = re.compile(r"KEYS\[(\d+)\]\s*\.\.\s*'([^']*)'")
KEY_USE = re.compile(r"KEYS\[(\d+)\]")


def built_keys(script: ScriptName, given: list[str]) -> list[str]:
    """Every key the script can build from the keys it is given (for the sample types)."""
    body = source(script)
    keys = []
    for match in INDEX_KEY.finditer(body):
        prefix = given[int(match.group(1)) - 1]
        keys += [f"{prefix}{state}:{t}" for state in (1, 2, 3) for t in TYPES]
    for match in CONCAT.finditer(body):
        keys.append(given[int(match.group(1)) - 1] + match.group(2))
    return keys


def test_every_script_has_a_sample_call() -> None:
    assert set(CALLS) == set(SCRIPT_NAMES)


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_every_key_a_script_is_given_or_builds_is_in_one_slot(
    script: ScriptName, namespace: str
) -> None:
    keys = Keys.for_namespace(namespace)
    call = CALLS[script](Commands(keys, 1024))
    assert call.script == script
    used = {int(i) for i in KEY_USE.findall(source(script))}
    assert used <= set(range(1, len(call.keys) + 1)), "the script reads a KEYS it is not given"
    every = call.keys + built_keys(script, call.keys)
    slots = {key: key_slot(key.encode()) for key in every}
    assert set(slots.values()) == {key_slot(keys.tasks.encode())}, slots


def test_the_damaged_set_and_the_index_keys_are_among_the_built_keys() -> None:
    """The Lua patterns above do find what the key schema says the scripts build."""
    keys = Keys.for_namespace("retryd")
    claim = CALLS["claim"](Commands(keys, 1024))
    built = built_keys("claim", claim.keys)
    assert keys.damaged in built
    assert keys.index(State.PENDING, 7) in built
    assert keys.index(State.FAILED, 4294967295) in built
    assert keys.rates in claim.keys  # the rate buckets: given, so in the slot check above


def test_namespaces_spread_over_slots() -> None:
    """Independent deployments (one namespace each) land on different slots, so on shards."""
    names = [f"tenant-{i}" for i in range(64)]
    slots = {key_slot(Keys.for_namespace(n).tasks.encode()) for n in names}
    assert len(slots) == len(names)
    # A 3-master cluster splits 16384 slots in three ranges; 64 namespaces reach all three.
    assert {slot * 3 // 16384 for slot in slots} == {0, 1, 2}
