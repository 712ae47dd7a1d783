"""retryd's worker: claims due tasks, runs the handler registered for their type, records outcomes.

Depends on `store` through its public API only. Handlers depend on this package's public API:
`handler`, `Permanent`, `RetryLater`.
"""

from worker.config import Config, load_config
from worker.errors import ConfigError, Permanent, RetryLater, WorkerError
from worker.loop import Worker
from worker.registry import Registry, default_registry, handler

__all__ = [
    "Config",
    "ConfigError",
    "Permanent",
    "Registry",
    "RetryLater",
    "Worker",
    "WorkerError",
    "default_registry",
    "handler",
    "load_config",
]
