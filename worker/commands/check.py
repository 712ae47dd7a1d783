"""`retryd check`: is this deployment ready to run? Config, handlers, then the store's server
(Redis or PostgreSQL), in that order.

Exit 0 when all three are fine (warnings, such as due tasks of a type no handler is registered
for, do not fail it), 2 when the config or a handler module is wrong or a PostgreSQL namespace's
schema is not the one this retryd runs on (migrations pending: the worker would refuse to start),
1 when the server cannot be reached. Run it before `retryd run`, or as a deploy gate.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store import Rate, StoreUnavailable
from store.connection import redact
from worker.commands._common import (
    DEFAULT_CONFIG,
    add_config_argument,
    config_from_args,
    open_store,
    redis_url,
)
from worker.commands._exit import EXIT_BAD_INPUT, EXIT_UNREACHABLE
from worker.commands._output import add_json_argument, error, print_json, table
from worker.commands._session import redis_failure
from worker.config import Config
from worker.errors import ConfigError
from worker.metrics import unhandled_ready
from worker.registry import default_registry, import_handler_modules, retry_settings

if TYPE_CHECKING:  # psycopg comes with the `postgres` extra: imported only for a PostgreSQL URL
    from store.postgres import DatabaseFacts

__all__ = ["add_parser", "main"]


@dataclass(slots=True)
class ServerInfo:
    """What check reads from the store's server: who it is and whether it may lose tasks."""

    version: str
    aof_enabled: bool
    maxmemory_policy: str
    warnings: list[str] = field(default_factory=list)
    # A PostgreSQL store's settings and schema version (its terms, not Redis's); None on Redis.
    database: DatabaseFacts | None = None


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "check",
        help="check the config, the handlers and the store's server",
        description=__doc__,
    )
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    import_handler_modules(config.handlers.modules)
    handlers = _handler_rows(config)
    warnings = _config_warnings(config)
    source = _config_source(args)
    if not args.json:
        print(f"config:     {source}")
        print(f"namespace:  {config.redis.namespace}")
        columns = ("TYPE", "HANDLER", "ASYNC", "MAX_ATTEMPTS", "TIMEOUT_S", "CONCURRENCY", "RATE")
        print(table(columns, [_printable(row) for row in handlers]))
    try:
        url = redis_url(config)
    except ConfigError as no_server:  # no URL and no embedded server: nothing to reach
        return error(str(no_server), EXIT_UNREACHABLE)
    try:
        server = asyncio.run(_server_info(config, url))
    except (StoreUnavailable, OSError) as failure:
        return error(redis_failure(url, failure), EXIT_UNREACHABLE)
    warnings += server.warnings
    # A schema the worker would refuse (SchemaVersionError at `retryd run`): reported, then
    # the check fails as run would, saying what to run.
    problem = None if server.database is None else server.database.schema_problem
    if args.json:
        print_json(_report(config, source, url, handlers, server, warnings))
    else:
        _print_server(url, server)
        for warning in warnings:
            print(f"warning:    {warning}")
        if problem is None:
            print("ok")
    return 0 if problem is None else error(problem, EXIT_BAD_INPUT)


def _print_server(url: str, server: ServerInfo) -> None:
    database = server.database
    if database is None:
        aof = "on" if server.aof_enabled else "off"
        print(f"redis:      {redact(url)}")
        print(
            f"server:     {server.version}, appendonly {aof}, maxmemory-policy "
            f"{server.maxmemory_policy}"
        )
        return
    print(f"postgresql: {redact(url)}")
    print(
        f"server:     PostgreSQL {database.server_version}, fsync {database.fsync}, "
        f"synchronous_commit {database.synchronous_commit}"
    )
    print(f"schema:     {_schema_line(database)}")


def _schema_line(database: DatabaseFacts) -> str:
    found, needed = database.schema_version, database.code_schema_version
    if found is None:
        return f"not created, this retryd needs version {needed}: migrations pending"
    if found < needed:
        return f"version {found}, this retryd needs {needed}: migrations pending"
    if found > needed:
        return f"version {found}, newer than this retryd ({needed})"
    return f"version {found}, as this retryd needs: up to date"


def _config_source(args: argparse.Namespace) -> str:
    if args.config is not None:
        return str(args.config)
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    return "built-in defaults"


_HandlerRow = tuple[int, str, str, int, float, int | None, Rate | None]


def _handler_rows(config: Config) -> list[_HandlerRow]:
    rows: list[_HandlerRow] = []
    for spec in default_registry.specs():
        retry = retry_settings(config, spec)
        rows.append(
            (
                spec.type,
                spec.name,
                "yes" if spec.is_async else "no",
                retry.max_attempts,
                retry.timeout,
                config.concurrency_for(spec.type),
                config.rate_for(spec.type),
            )
        )
    return rows


def _printable(row: _HandlerRow) -> tuple[object, ...]:
    """A handler row as the table shows it: flow limits spelled out, '-' where there is none."""
    *retry, concurrency, rate = row
    limit = "-" if concurrency is None else str(concurrency)
    starts = "-" if rate is None else f"{rate.per_second:g}/s, burst {rate.burst}"
    return (*retry, limit, starts)


def _config_warnings(config: Config) -> list[str]:
    warnings = []
    if not default_registry.types():
        warnings.append("no handler is registered: the worker would claim nothing")
    warnings.extend(
        f"[types.{task_type}] is configured but no handler has type {task_type}"
        for task_type in sorted(set(config.types) - set(default_registry.types()))
    )
    return warnings


async def _server_info(config: Config, url: str) -> ServerInfo:
    try:
        store = open_store(config, url)
    except ValueError as bad_url:  # store.connection's messages already redact the URL
        raise ConfigError(f"redis.url: {bad_url}") from None
    try:
        if _is_postgres(url):
            return await _database_info(store)
        facts = await store.server_facts()
        waiting = unhandled_ready(await store.stats(), default_registry.types())
    finally:
        await store.aclose()
    server = ServerInfo(
        version=facts.version,
        aof_enabled=facts.persistent,
        maxmemory_policy=facts.eviction_policy,
    )
    server.warnings.extend(_unhandled_warnings(waiting))
    if not server.aof_enabled:
        server.warnings.append("appendonly is off: a Redis crash loses recently put tasks")
    if server.maxmemory_policy != "noeviction":
        server.warnings.append(
            f"maxmemory-policy is {server.maxmemory_policy}: Redis may evict tasks (use noeviction)"
        )
    return server


def _is_postgres(url: str) -> bool:
    return url.lower().startswith(("postgresql://", "postgres://"))


async def _database_info(store: Any) -> ServerInfo:
    """A PostgreSQL store's facts, in its terms: fsync and synchronous_commit, and the schema
    version against this code's (a missing or older schema is reported, not raised)."""
    facts: DatabaseFacts = await store.database_facts()
    server = ServerInfo(
        f"postgresql {facts.server_version}", facts.durable, "noeviction", database=facts
    )
    server.warnings.extend(facts.warnings())
    if facts.schema_problem is None:  # the tables are there to count
        waiting = unhandled_ready(await store.stats(), default_registry.types())
        server.warnings.extend(_unhandled_warnings(waiting))
    return server


def _unhandled_warnings(waiting: dict[int, int]) -> list[str]:
    return [
        f"{count} tasks of type {task_type} are due and no handler has type {task_type}: "
        "they wait, unclaimed, until one is registered"
        for task_type, count in waiting.items()
    ]


def _report(
    config: Config,
    source: str,
    url: str,
    handlers: list[_HandlerRow],
    server: ServerInfo,
    warnings: list[str],
) -> dict[str, Any]:
    return {
        "config": source,
        "namespace": config.redis.namespace,
        "handlers": [
            {
                "type": t,
                "handler": name,
                "async": is_async == "yes",
                "max_attempts": most,
                "timeout_seconds": timeout,
                "concurrency": concurrency,  # most runs in flight per process; None: no limit
                "rate": _rate_report(rate),
            }
            for t, name, is_async, most, timeout, concurrency, rate in handlers
        ],
        **_server_report(url, server),
        "warnings": warnings,
        "ok": server.database is None or server.database.schema_problem is None,
    }


def _rate_report(rate: Rate | None) -> dict[str, float] | None:
    """[types.N] rate and burst, across all workers; None: no limit."""
    return None if rate is None else {"per_second": rate.per_second, "burst": rate.burst}


def _server_report(url: str, server: ServerInfo) -> dict[str, Any]:
    database = server.database
    if database is None:
        return {
            "redis": {
                "url": redact(url),
                "server": server.version,
                "aof_enabled": server.aof_enabled,
                "maxmemory_policy": server.maxmemory_policy,
            }
        }
    return {
        "postgresql": {
            "url": redact(url),
            "server": database.server_version,
            "fsync": database.fsync,
            "synchronous_commit": database.synchronous_commit,
            "schema_version": database.schema_version,
            "code_schema_version": database.code_schema_version,
            "migrations_pending": database.migrations_pending,
        }
    }
