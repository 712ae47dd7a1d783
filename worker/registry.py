"""Handlers by task type: the `@handler(type=N)` decorator and the table it fills.

Explicit and greppable: a handler is found by searching for `@handler(type=N)`; there is no
dispatch by name or convention. Importing a module registers its handlers (config.toml lists the
modules under [handlers] modules).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from store import MAX_TYPE, Record
from worker.config import Config, RetrySettings, check_delays
from worker.errors import ConfigError

__all__ = [
    "HandlerSpec",
    "Registry",
    "default_registry",
    "handler",
    "import_handler_modules",
    "retry_settings",
]

HandlerFunc = Callable[[Record], Awaitable[Any]] | Callable[[Record], Any]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One registered handler and the per-type settings given at its decorator."""

    type: int
    func: HandlerFunc
    is_async: bool
    max_attempts: int | None = None
    initial_delay: float | None = None
    max_delay: float | None = None
    timeout: float | None = None

    @property
    def name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"


class Registry:
    """Task type -> handler; a second handler for one type is a start-up error naming both."""

    def __init__(self) -> None:
        self._specs: dict[int, HandlerSpec] = {}

    def add(self, spec: HandlerSpec) -> None:
        if isinstance(spec.type, bool) or not isinstance(spec.type, int):
            raise ConfigError(f"handler {spec.name}: type must be an int, got {spec.type!r}")
        if not 1 <= spec.type <= MAX_TYPE:
            raise ConfigError(f"handler {spec.name}: type must be in 1..{MAX_TYPE}")
        existing = self._specs.get(spec.type)
        if existing is not None and existing.func is not spec.func:
            raise ConfigError(f"two handlers for type {spec.type}: {existing.name} and {spec.name}")
        self._specs[spec.type] = spec

    def get(self, task_type: int) -> HandlerSpec | None:
        return self._specs.get(task_type)

    def types(self) -> list[int]:
        return sorted(self._specs)

    def specs(self) -> list[HandlerSpec]:
        return [self._specs[t] for t in self.types()]

    def clear(self) -> None:
        self._specs.clear()


default_registry = Registry()


def handler(
    *,
    type: int,
    max_attempts: int | None = None,
    initial_delay: float | None = None,
    max_delay: float | None = None,
    timeout: float | None = None,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Register the decorated function (async or plain) as the handler of a task type."""

    def register(func: F) -> F:
        spec = HandlerSpec(
            type=type,
            func=func,
            is_async=inspect.iscoroutinefunction(func),
            max_attempts=max_attempts,
            initial_delay=initial_delay,
            max_delay=max_delay,
            timeout=timeout,
        )
        (registry or default_registry).add(spec)
        return func

    return register


def import_handler_modules(modules: Iterable[str]) -> None:
    """Import each module so its @handler decorators run; a failure names the module.

    The working directory is searched too (last, so it never shadows an installed package), as
    `python -m` would: the `retryd` console script alone leaves it out, and `myapp.tasks` next to
    config.toml would not import.
    """
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(
                f"handlers.modules: cannot import {module!r}: {type(error).__name__}: {error}"
            ) from error


def retry_settings(config: Config, spec: HandlerSpec) -> RetrySettings:
    """The handler's retry settings (precedence: Config.retry_for), checked as a whole."""
    declared = {
        "max_attempts": spec.max_attempts,
        "initial_delay": spec.initial_delay,
        "max_delay": spec.max_delay,
        "timeout": spec.timeout,
    }
    settings = config.retry_for(spec.type, declared)
    check_delays(f"type {spec.type} (decorator, [retry] and [types.{spec.type}])", settings)
    return settings
