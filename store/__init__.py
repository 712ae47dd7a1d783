"""retryd's task store: the seed's Store contract, kept in memory or in Redis.

Producers put tasks; workers claim them and record outcomes. This package knows nothing of the
worker: it is imported by producers, the worker and tests alike.
"""

from store.errors import (
    ExistsError,
    NotFoundError,
    NotReplicatedError,
    StaleVersionError,
    StoreError,
    ValidationError,
)
from store.memory import MemoryStore
from store.protocol import DEFAULT_MAX_DATA_BYTES, Store
from store.queue import Change, Claim, Claimed, Stats
from store.record import Ordering, Record, State
from store.redis_store import RedisStore
from store.sync import SyncRedisStore

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "Change",
    "Claim",
    "Claimed",
    "ExistsError",
    "MemoryStore",
    "NotFoundError",
    "NotReplicatedError",
    "Ordering",
    "Record",
    "RedisStore",
    "StaleVersionError",
    "State",
    "Stats",
    "Store",
    "StoreError",
    "SyncRedisStore",
    "ValidationError",
]
