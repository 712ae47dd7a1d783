"""`retryd migrate`: create or upgrade the namespace's schema on PostgreSQL; on Redis, list
the tasks stored before the listing by id existed (an upgrade from retryd before issue 13).

Idempotent and safe to run from many containers at once (an advisory lock serializes them; the
first applies what is missing, the others find nothing to do). On Redis it adds what the
listing lacks, one HSCAN page at a time, beside live workers; run again, it adds nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from store import RedisStore, WorkerStore
from store.connection import redact
from worker.commands._common import add_config_argument, config_from_args
from worker.commands._exit import EXIT_BAD_INPUT, EXIT_UNREACHABLE
from worker.commands._output import add_json_argument, error, print_json
from worker.commands._session import with_store
from worker.logs import scrub, secrets_of_url

__all__ = ["POSTGRES_SCHEMES", "add_parser", "main"]

POSTGRES_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_SECONDS = 10


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "migrate", help="create or upgrade the PostgreSQL schema", description=__doc__
    )
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    url, namespace = config.redis.url, config.redis.namespace
    if url.partition("://")[0].lower() not in POSTGRES_SCHEMES:
        return with_store(args, lambda _config, store: _relist(args, namespace, store))
    # Imported here, not at the top: every `retryd` command loads this module, and psycopg comes
    # only with the `postgres` extra (`pip install .` and the container image run without it).
    try:
        import psycopg

        from store.postgres import migrate
    except ImportError:
        return error(
            "a PostgreSQL URL needs the postgres extra: pip install 'retryd[postgres]'",
            EXIT_BAD_INPUT,
        )
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            report = migrate(conn, namespace)
    except psycopg.Error as failure:
        # libpq's messages run over several lines; an error here is one line.
        why = "; ".join(line.strip() for line in str(failure).splitlines() if line.strip())
        text = scrub(f"{type(failure).__name__}: {why}", secrets_of_url(url))
        return error(f"cannot use PostgreSQL at {redact(url)}: {text}", EXIT_UNREACHABLE)
    facts = {"namespace": namespace, "store": "postgresql", "before": report.before}
    return _report(args, facts | {"after": report.after, "applied": report.applied})


async def _relist(args: argparse.Namespace, namespace: str, store: WorkerStore) -> int:
    # Only a Redis store has a listing to fill (memory:// and the like have nothing to do).
    relisted = await store.relist_all() if isinstance(store, RedisStore) else 0
    return _report(args, {"namespace": namespace, "store": "redis", "relisted": relisted})


def _report(args: argparse.Namespace, facts: dict[str, Any]) -> int:
    if args.json:
        print_json(facts)
    elif facts["store"] == "redis":
        print(
            f"namespace {facts['namespace']!r} is on Redis, which needs no schema; "
            f"{facts['relisted']} task(s) stored before the listing by id were listed"
        )
    elif facts["applied"]:
        print(
            f"namespace {facts['namespace']!r}: schema version {facts['before']} -> "
            f"{facts['after']} ({facts['applied']} migration(s) applied)"
        )
    else:
        print(f"namespace {facts['namespace']!r}: schema at version {facts['after']}, up to date")
    return 0
