"""The interface the harness drives: one adapter per system, the same five measurements each."""

from __future__ import annotations

import abc
import importlib.metadata
import sys
from pathlib import Path
from typing import ClassVar

__all__ = ["System", "Unavailable"]


class Unavailable(Exception):  # noqa: N818 - reads as "system unavailable" at the raise site
    """Raised when a system cannot run here: its package is missing or its worker cannot start."""


class System(abc.ABC):
    """One queue system as the harness sees it: a bulk enqueue, a scheduled enqueue, a worker."""

    name: ClassVar[str]
    package: ClassVar[str]
    # Documented in docs/benchmarks.md and copied into the JSON so a reader can check fairness.
    worker_settings: ClassVar[str]
    enqueue_api: ClassVar[str]
    retry_setting: ClassVar[str]

    def version(self) -> str:
        """The installed package version, as the JSON and the table report it."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    @abc.abstractmethod
    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        """The command that runs one worker process against url; raise Unavailable if none."""

    @abc.abstractmethod
    async def enqueue(self, mode: str, n: int) -> None:
        """Enqueue n jobs due now whose payload starts with mode, with the fastest bulk API."""

    @abc.abstractmethod
    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        """Enqueue n jobs due at the epoch instant due (a whole second)."""

    async def reset(self) -> None:  # noqa: B027 - optional: only systems that keep jobs elsewhere
        """Remove every job this system stored outside the harness's Redis (which it flushes
        itself), so each phase starts empty: PostgreSQL-backed systems empty their tables."""

    async def close(self) -> None:  # noqa: B027 - optional: only some adapters hold a client
        """Release the producer's connections."""


def python_argv(*args: str) -> list[str]:
    """Run a module with the interpreter running the harness, so the same venv serves both."""
    return [sys.executable, *args]
