"""`retryd`: the command line. Each subcommand lives in worker/commands/<name>.py.

Exit status: 0 success; 1 not found, version conflict, or a store that cannot be reached or
fails the call; 2 bad input or configuration. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from store import (
    ExistsError,
    NotFoundError,
    SchemaVersionError,
    StaleVersionError,
    StateError,
    StoreError,
    StoreUnavailable,
    ValidationError,
)
from worker.commands._exit import EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_UNREACHABLE
from worker.commands._output import with_notes
from worker.errors import ConfigError
from worker.logs import describe
from worker.metrics import build_version

__all__ = ["main"]

# The subcommand modules, in the order `retryd --help` lists them.
COMMANDS = (
    "run",
    "metrics",
    "web",
    "put",
    "get",
    "ls",
    "count",
    "retry",
    "cancel",
    "delete",
    "check",
    "migrate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retryd", description="A background retry worker daemon on Redis."
    )
    parser.add_argument("--version", action="version", version=f"retryd {build_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"worker.commands.{name}").add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, ValidationError, ExistsError, StateError, SchemaVersionError) as error:
        print(f"retryd: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (NotFoundError, StaleVersionError) as error:
        print(f"retryd: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except ValueError as error:  # a malformed Redis URL (its message never shows the password)
        print(f"retryd: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreUnavailable, OSError) as error:
        # redis-py and libpq name host and port in these messages, never the password.
        message = with_notes(f"cannot use the store: {describe(error)}", error)
        print(f"retryd: {message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except StoreError as error:  # the server failed the call (a BUSY reply, a script error)
        print(f"retryd: {with_notes(str(error), error)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
