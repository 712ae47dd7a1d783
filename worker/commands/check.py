"""`retryd check`: is this deployment ready to run? Config, handlers, then Redis, in that order.

Exit 0 when all three are fine (warnings, such as due tasks of a type no handler is registered
for, do not fail it), 2 when the config or a handler module
is wrong, 1 when Redis cannot be reached. Run it before `retryd run`, or as a deploy gate.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store import StoreUnavailable
from store.connection import redact
from worker.commands._common import (
    DEFAULT_CONFIG,
    add_config_argument,
    config_from_args,
    open_store,
    redis_url,
)
from worker.commands._exit import EXIT_UNREACHABLE
from worker.commands._output import add_json_argument, error, print_json, table
from worker.commands._session import redis_failure
from worker.config import Config
from worker.errors import ConfigError
from worker.metrics import unhandled_ready
from worker.registry import default_registry, import_handler_modules, retry_settings

__all__ = ["add_parser", "main"]


@dataclass(slots=True)
class ServerInfo:
    """What check reads from Redis: who it is and whether it may lose tasks."""

    version: str
    aof_enabled: bool
    maxmemory_policy: str
    warnings: list[str] = field(default_factory=list)


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "check", help="check the config, the handlers and Redis", description=__doc__
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
        print(table(("TYPE", "HANDLER", "ASYNC", "MAX_ATTEMPTS", "TIMEOUT_S"), handlers))
    try:
        url = redis_url(config)
    except ConfigError as no_server:  # no URL and no embedded server: nothing to reach
        return error(str(no_server), EXIT_UNREACHABLE)
    try:
        server = asyncio.run(_server_info(config, url))
    except (StoreUnavailable, OSError) as failure:
        return error(redis_failure(url, failure), EXIT_UNREACHABLE)
    warnings += server.warnings
    if args.json:
        print_json(_report(config, source, url, handlers, server, warnings))
        return 0
    aof = "on" if server.aof_enabled else "off"
    print(f"redis:      {redact(url)}")
    print(
        f"server:     {server.version}, appendonly {aof}, maxmemory-policy "
        f"{server.maxmemory_policy}"
    )
    for warning in warnings:
        print(f"warning:    {warning}")
    print("ok")
    return 0


def _config_source(args: argparse.Namespace) -> str:
    if args.config is not None:
        return str(args.config)
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    return "built-in defaults"


def _handler_rows(config: Config) -> list[tuple[int, str, str, int, float]]:
    rows = []
    for spec in default_registry.specs():
        retry = retry_settings(config, spec)
        rows.append(
            (
                spec.type,
                spec.name,
                "yes" if spec.is_async else "no",
                retry.max_attempts,
                retry.timeout,
            )
        )
    return rows


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
        facts = await store.server_facts()
        waiting = unhandled_ready(await store.stats(), default_registry.types())
    finally:
        await store.aclose()
    server = ServerInfo(
        version=facts.version,
        aof_enabled=facts.persistent,
        maxmemory_policy=facts.eviction_policy,
    )
    server.warnings.extend(
        f"{count} tasks of type {task_type} are due and no handler has type {task_type}: "
        "they wait, unclaimed, until one is registered"
        for task_type, count in waiting.items()
    )
    if not server.aof_enabled:
        server.warnings.append("appendonly is off: a Redis crash loses recently put tasks")
    if server.maxmemory_policy != "noeviction":
        server.warnings.append(
            f"maxmemory-policy is {server.maxmemory_policy}: Redis may evict tasks (use noeviction)"
        )
    return server


def _report(
    config: Config,
    source: str,
    url: str,
    handlers: list[tuple[int, str, str, int, float]],
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
            }
            for t, name, is_async, most, timeout in handlers
        ],
        "redis": {
            "url": redact(url),
            "server": server.version,
            "aof_enabled": server.aof_enabled,
            "maxmemory_policy": server.maxmemory_policy,
        },
        "warnings": warnings,
        "ok": True,
    }
