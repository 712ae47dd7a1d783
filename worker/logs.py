"""structlog set-up: JSON lines for machines, readable lines on a terminal, secrets scrubbed.

Every value of every event passes through the scrubber, so a password that reaches a log line
by any path (an exception text, a URL) is replaced before anything is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog

from store import StoreUnavailable
from worker.config import LogSettings

__all__ = ["configure_logging", "describe", "error_kind", "scrub", "secrets_of_url"]

REDACTED = "***"


def error_kind(error: BaseException) -> str:
    """What failed, in a word safe to show anywhere: the client's error class a StoreUnavailable
    stands for ("ConnectionError"), else the error's own class."""
    return error.kind if isinstance(error, StoreUnavailable) else type(error).__name__


def describe(error: BaseException) -> str:
    """'Kind: message' for a log line or a CLI error: StoreUnavailable by the client's error
    class it stands for (its text starts with it), anything else by its own class."""
    if isinstance(error, StoreUnavailable):
        return str(error)
    return f"{type(error).__name__}: {error}"


def secrets_of_url(url: str) -> list[str]:
    """The credentials a Redis URL carries (password, and the whole user:password pair), as
    written and percent-decoded: redis-py decodes the password before it can show up."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    if not password:
        return []
    written = [f"{parts.username or ''}:{password}", password]
    return sorted({*written, *map(unquote, written)}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """text with every secret replaced by ***, longest first (so a pair goes before its part)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class SecretScrubber:
    """A structlog processor replacing each known secret in every string value."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = list(secrets)

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if self._secrets:
            for key, value in event.items():
                event[key] = self._scrub(value)
        return event

    def _scrub(self, value: Any) -> Any:
        if not isinstance(value, str):
            if isinstance(value, BaseException):
                value = f"{type(value).__name__}: {value}"
            else:
                return value
        return scrub(value, self._secrets)


def configure_logging(settings: LogSettings, secrets: Iterable[str] = ()) -> None:
    """Route structlog to stderr at settings.level, as JSON or console lines."""
    renderer: Any
    if settings.format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretScrubber(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
