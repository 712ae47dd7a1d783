"""retryd's task store: the seed's Store contract and the worker's side of it, in memory or Redis.

Producers put tasks; workers claim them and record outcomes. This package knows nothing of the
worker: it is imported by producers, the worker and tests alike.

  protocol.py      Store (the seed's contract), Lifecycle (list, inspect, delete, cancel, retry,
                   prune) and WorkerStore (both, plus claim, settle, extend, stats, wake-ups,
                   server facts): what every store implements
  worker_types.py  the values WorkerStore takes and returns (Claim, Change, Rate, Stats,
                   ServerFacts)
  lifecycle.py     the values Lifecycle returns (TaskDetails, Failure, Pruned, Reason)
  errors.py        StoreError and its kin; TransientError is what a worker retries
  factory.py       open_store(url): the store for a URL's scheme
  memory.py        MemoryStore, the reference implementation
  redis_store.py   RedisStore (async) and sync.py SyncRedisStore, on redis-py
"""

from store.errors import (
    ExistsError,
    NotFoundError,
    NotReplicatedError,
    SchemaVersionError,
    StaleVersionError,
    StateError,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
    TransientError,
    ValidationError,
)
from store.factory import SCHEMES, open_store
from store.lifecycle import (
    MAX_REASON_KIND_BYTES,
    MAX_REASON_MESSAGE_BYTES,
    Failure,
    Pruned,
    Reason,
    TaskDetails,
    TypeCursor,
)
from store.memory import MemoryStore
from store.presence import Beat, Presence, TypeCounts
from store.protocol import (
    DEFAULT_MAX_DATA_BYTES,
    MAX_PUT_BATCH,
    MAX_TYPE_PAGE,
    Lifecycle,
    Store,
    Wakeups,
    WorkerStore,
)
from store.record import END_OF_TIME, MAX_TYPE, Ordering, Record, State
from store.redis_store import RedisStore
from store.sync import SyncRedisStore
from store.worker_types import (
    MAX_BURST,
    MAX_RATE,
    MIN_RATE,
    Change,
    Claim,
    Claimed,
    Rate,
    ServerFacts,
    Stats,
)

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "END_OF_TIME",
    "MAX_BURST",
    "MAX_PUT_BATCH",
    "MAX_RATE",
    "MAX_REASON_KIND_BYTES",
    "MAX_REASON_MESSAGE_BYTES",
    "MAX_TYPE",
    "MAX_TYPE_PAGE",
    "MIN_RATE",
    "SCHEMES",
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
    "Rate",
    "Reason",
    "Record",
    "RedisStore",
    "SchemaVersionError",
    "ServerFacts",
    "StaleVersionError",
    "State",
    "StateError",
    "Stats",
    "Store",
    "StoreAccessDenied",
    "StoreError",
    "StoreUnavailable",
    "SyncRedisStore",
    "TaskDetails",
    "TransientError",
    "TypeCounts",
    "TypeCursor",
    "ValidationError",
    "Wakeups",
    "WorkerStore",
    "open_store",
]
