"""The CLI's exit statuses, in one place (README and docs/cli.md document them).

0 success; 1 not found, a version conflict, or the store cannot be reached; 2 bad input or
configuration.
"""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_UNREACHABLE"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # no such task, or it changed under us (version conflict)
EXIT_UNREACHABLE = 1  # the store cannot be reached or refused us
EXIT_BAD_INPUT = 2  # bad arguments, input lines or configuration
