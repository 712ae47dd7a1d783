"""retryd's task store: the seed's Store contract, kept in memory or in Redis.

Producers put tasks; workers claim them and record outcomes. This package knows nothing of the
worker: it is imported by producers, the worker and tests alike.
"""

from store.errors import (
    ExistsError,
    NotFoundError,
    NotReplicatedError,
    StaleVersionError,
    StateError,
    StoreError,
    ValidationError,
)
from store.lifecycle import (
    MAX_REASON_KIND_BYTES,
    MAX_REASON_MESSAGE_BYTES,
    Failure,
    Pruned,
    Reason,
    TaskDetails,
)
from store.memory import MemoryStore
from store.presence import Beat, Presence, TypeCounts
from store.protocol import DEFAULT_MAX_DATA_BYTES, Lifecycle, Store
from store.queue import Change, Claim, Claimed, Stats
from store.record import Ordering, Record, State
from store.redis_store import RedisStore
from store.sync import SyncRedisStore

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "MAX_REASON_KIND_BYTES",
    "MAX_REASON_MESSAGE_BYTES",
    "Beat",
    "Change",
    "Claim",
    "Claimed",
    "ExistsError",
    "Failure",
    "Lifecycle",
    "MemoryStore",
    "NotFoundError",
    "NotReplicatedError",
    "Ordering",
    "Presence",
    "Pruned",
    "Reason",
    "Record",
    "RedisStore",
    "StaleVersionError",
    "State",
    "StateError",
    "Stats",
    "Store",
    "StoreError",
    "SyncRedisStore",
    "TaskDetails",
    "TypeCounts",
    "ValidationError",
]
