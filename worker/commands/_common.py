"""What every subcommand needs: the config, the Redis URL it names, a store on it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from store import WorkerStore
from store import open_store as open_store_at
from worker.config import Config, load_config
from worker.embedded import running_url
from worker.errors import ConfigError

__all__ = ["add_config_argument", "config_from_args", "open_store", "redis_url"]

DEFAULT_CONFIG = "config.toml"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML config file (default: ./{DEFAULT_CONFIG} if present, else built-in defaults)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    path: str | None = args.config
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return load_config(path, os.environ)


def redis_url(config: Config) -> str:
    """[redis] url, or the running embedded server's when it is empty."""
    if config.redis.url:
        return config.redis.url
    url = running_url(config.embedded.data_dir)
    if url is None:
        raise ConfigError(
            "redis.url: empty, and no embedded server is running for "
            f"{config.embedded.data_dir!r} (start `retryd run`, or set RETRYD_REDIS_URL)"
        )
    return url


def open_store(config: Config, url: str | None = None) -> WorkerStore:
    """The store [redis] url names (its scheme picks the kind), with the config's options."""
    return open_store_at(
        url or redis_url(config),
        namespace=config.redis.namespace,
        max_data_bytes=config.store.max_data_bytes,
        replicas_to_ack=config.redis.replicas_to_ack,
    )
