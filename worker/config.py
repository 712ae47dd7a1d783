"""Settings: config.toml, overridden key by key from RETRYD_<SECTION>_<KEY> variables.

Every value is checked once, here, so the rest of the worker can trust its settings. A wrong key
or value is a ConfigError naming it; the CLI turns that into exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, get_type_hints

from store import MAX_BURST, MAX_RATE, MAX_TYPE, MIN_RATE, Rate
from worker.errors import ConfigError

__all__ = ["Config", "RetentionSettings", "TypeSettings", "check_delays", "load_config"]

ENV_PREFIX = "RETRYD_"
# More worker processes than this on one machine is a typo, not a deployment: scale with hosts.
MAX_PROCESSES = 256
# Upper bounds, so that an absurd value stops the start, naming its key, instead of failing
# every claim or settle later: a lease of a day, a delay of a week (RetryLater's ceiling too),
# a million attempts.
MAX_LEASE_SECONDS = 86400.0
MAX_DELAY_SECONDS = 7 * 24 * 3600.0
MAX_ATTEMPTS = 1_000_000
# The most runs of one type a process may hold in flight ([types.N] concurrency); [worker]
# concurrency bounds all types together anyway, so more than this is a typo.
MAX_TYPE_CONCURRENCY = 100_000
# Beyond these every claim would be refused (a store leases at most 1,000,000 at once), or a
# process would start more handler threads than any machine runs.
MAX_CONCURRENCY = 100_000
MAX_BATCH = 100_000


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = ""  # empty: start the embedded server (see worker/embedded.py)
    namespace: str = "retryd"
    # Writes count as done only once this many replicas took them (WAIT): no acknowledged
    # write is lost in a Sentinel failover. 0: plain asynchronous replication.
    replicas_to_ack: int = 0


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 32
    batch: int = 100
    lease: float = 30.0
    shutdown_grace: float = 25.0
    # Idle workers are woken by a publish when tasks are put; this is only the fallback.
    poll_interval: float = 1.0
    # More than 1: a supervisor runs this many worker processes (worker/supervisor.py).
    processes: int = 1
    # All of a worker process's threads on one CPU, moved as load shifts (worker/cpu.py).
    one_cpu: bool = True


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int = 10
    initial_delay: float = 1.0
    max_delay: float = 3600.0
    timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class TypeSettings:
    """Per-type overrides of [retry] (None keeps the default), and the type's flow control
    (None: no limit)."""

    max_attempts: int | None = None
    initial_delay: float | None = None
    max_delay: float | None = None
    timeout: float | None = None
    # The most runs of the type in flight in each worker process (tasks claimed ahead of a
    # free slot included).
    concurrency: int | None = None
    # The most starts of the type per second across all workers of the namespace (a token
    # bucket in the store), and how many may start at once after a quiet spell (the bucket's
    # size; default: one second's worth, at least 1).
    rate: float | None = None
    burst: int | None = None

    @property
    def start_rate(self) -> Rate | None:
        """rate and burst as the store takes them; None without a rate."""
        if self.rate is None:
            return None
        burst = self.burst if self.burst is not None else max(1, math.ceil(self.rate))
        return Rate(per_second=self.rate, burst=burst)


# The [types.N] keys that override [retry]'s; the others are flow control.
_RETRY_KEYS = frozenset(f.name for f in dataclasses.fields(RetrySettings))


@dataclass(frozen=True, slots=True)
class HandlersSettings:
    modules: tuple[str, ...] = ("handlers.examples",)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    host: str = "0.0.0.0"
    port: int = 9464  # 0 disables the listener


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "console"


@dataclass(frozen=True, slots=True)
class EmbeddedSettings:
    data_dir: str = "var/embedded"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    max_data_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long a finished task is kept, in seconds after it finished; 0 keeps it forever."""

    confirmed: float = 604800.0  # a week
    failed: float = 2592000.0  # 30 days: long enough to notice, read why, and retry
    # How often each worker looks for tasks past retention (with jitter, so workers spread).
    interval: float = 60.0


@dataclass(frozen=True, slots=True)
class WebSettings:
    """`retryd web`: where the dashboard listens and who may use it."""

    host: str = "127.0.0.1"
    port: int = 9465
    auth: str = "none"  # none | basic | token
    user: str = "admin"  # the basic-auth user name
    # The password (basic) or token; RETRYD_WEB_SECRET keeps it out of config files. Never
    # logged, never in a repr.
    secret: str = field(default="", repr=False)
    read_only: bool = False


_SECTIONS: dict[str, type[Any]] = {
    "redis": RedisSettings,
    "worker": WorkerSettings,
    "retry": RetrySettings,
    "handlers": HandlersSettings,
    "metrics": MetricsSettings,
    "log": LogSettings,
    "embedded": EmbeddedSettings,
    "store": StoreSettings,
    "web": WebSettings,
    "retention": RetentionSettings,
}
# A retention past this (100 years) is surely a mistake, and past ~285 years not storable.
MAX_RETENTION_SECONDS = 100 * 365 * 86400
WEB_AUTH_MODES = ("none", "basic", "token")
# A token or password shorter than this is refused: it guards actions on every task.
MIN_WEB_SECRET_CHARS = 16
_EXPECTED: dict[Any, str] = {
    int: "an integer (like 32)",
    float: "a number of seconds (like 1.5)",
    bool: "true or false",
}
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_LOG_FORMATS = ("json", "console")


@dataclass(frozen=True, slots=True)
class Config:
    redis: RedisSettings = field(default_factory=RedisSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    types: Mapping[int, TypeSettings] = field(default_factory=dict)
    handlers: HandlersSettings = field(default_factory=HandlersSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    embedded: EmbeddedSettings = field(default_factory=EmbeddedSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    web: WebSettings = field(default_factory=WebSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Self:
        """Build and check settings from a parsed TOML document."""
        sections: dict[str, Any] = {}
        for name, table in raw.items():
            if name == "types":
                sections["types"] = _parse_types(table)
            elif name in _SECTIONS:
                sections[name] = _parse_section(name, _SECTIONS[name], table)
            else:
                raise ConfigError(f"[{name}]: unknown section (known: {_known_sections()})")
        config = cls(**sections)
        config.check()
        return config

    def check(self) -> None:
        """Refuse values that parse but make no sense together."""
        _at_least("worker.concurrency", self.worker.concurrency, 1)
        _at_most("worker.concurrency", self.worker.concurrency, MAX_CONCURRENCY)
        _at_least("worker.batch", self.worker.batch, 1)
        _at_most("worker.batch", self.worker.batch, MAX_BATCH)
        _positive("worker.lease", self.worker.lease)
        _at_most("worker.lease", self.worker.lease, MAX_LEASE_SECONDS)
        _at_least("worker.shutdown_grace", self.worker.shutdown_grace, 0)
        _positive("worker.poll_interval", self.worker.poll_interval)
        if not 1 <= self.worker.processes <= MAX_PROCESSES:
            raise ConfigError(
                f"worker.processes: must be in 1..{MAX_PROCESSES}, got {self.worker.processes}"
            )
        _check_retry("retry", dataclasses.asdict(self.retry))
        check_delays("retry", self.retry)
        for task_type, overrides in self.types.items():
            _check_retry(f"types.{task_type}", dataclasses.asdict(overrides))
            check_delays(f"types.{task_type}", self.retry_for(task_type))
            _check_flow(f"types.{task_type}", overrides)
        if not 0 <= self.metrics.port <= 65535:
            raise ConfigError(f"metrics.port: must be in 0..65535, got {self.metrics.port}")
        if self.log.level not in _LOG_LEVELS:
            raise ConfigError(f"log.level: must be one of {', '.join(_LOG_LEVELS)}")
        if self.log.format not in _LOG_FORMATS:
            raise ConfigError(f"log.format: must be one of {', '.join(_LOG_FORMATS)}")
        _at_least("store.max_data_bytes", self.store.max_data_bytes, 1)
        _at_least("redis.replicas_to_ack", self.redis.replicas_to_ack, 0)
        _check_web(self.web)
        _check_retention(self.retention)

    def retry_for(self, task_type: int, declared: Mapping[str, Any] | None = None) -> RetrySettings:
        """A type's retry settings, the one place their precedence is decided: [retry]
        defaults, then what its handler declared (the decorator's arguments; None keeps the
        default), then [types.N]: operators get the last word, without a code change."""
        settings = dataclasses.replace(self.retry, **_given(declared or {}))
        overrides = dataclasses.asdict(self.types.get(task_type, TypeSettings()))
        retry = {key: value for key, value in overrides.items() if key in _RETRY_KEYS}
        return dataclasses.replace(settings, **_given(retry))

    def concurrency_for(self, task_type: int) -> int | None:
        """[types.N] concurrency: the most runs of the type in flight per process, or None."""
        return self.types.get(task_type, TypeSettings()).concurrency

    def rate_for(self, task_type: int) -> Rate | None:
        """[types.N] rate and burst: the type's start rate across all workers, or None."""
        return self.types.get(task_type, TypeSettings()).start_rate


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Config:
    """Read the TOML file at path (None: built-in defaults), then apply RETRYD_* overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {os.fspath(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {os.fspath(path)!r}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {os.fspath(path)!r}: invalid TOML: {error}") from None
    for name, text in env.items():
        if name.startswith(ENV_PREFIX):
            _apply_env(raw, name, text)
    return Config.from_mapping(raw)


def _apply_env(raw: dict[str, Any], name: str, text: str) -> None:
    """Put one RETRYD_SECTION_KEY override into raw; variables of no known section are left."""
    rest = name[len(ENV_PREFIX) :].lower()
    if rest.startswith("types_"):
        task_type, _, key = rest[len("types_") :].partition("_")
        section = raw.setdefault("types", {}).setdefault(task_type, {})
        section[key] = _env_value(name, TypeSettings, key, text)
        return
    for section_name, settings in _SECTIONS.items():
        if rest.startswith(section_name + "_"):
            key = rest[len(section_name) + 1 :]
            raw.setdefault(section_name, {})[key] = _env_value(name, settings, key, text)
            return
    # Anything else (RETRYD_TEST_REDIS_URL, say) belongs to someone else: not ours to refuse.


def _env_value(variable: str, settings: type[Any], key: str, text: str) -> Any:
    hints = get_type_hints(settings)
    if key not in hints:
        raise ConfigError(f"{variable}: unknown key {key!r} (known: {', '.join(hints)})")
    wanted = hints[key]
    if wanted in (str,):
        return text
    if wanted == tuple[str, ...]:
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"{variable}: {text!r} is not {_expected(wanted)}") from None


def _expected(wanted: Any) -> str:
    """What a variable of this field's type must hold, for an error message."""
    if isinstance(wanted, types.UnionType):  # `int | None`: the None is only "not overridden"
        wanted = next(t for t in wanted.__args__ if t is not type(None))
    return _EXPECTED.get(wanted, f"a valid {getattr(wanted, '__name__', wanted)}")


def _parse_section(name: str, settings: type[Any], table: Any) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}]: must be a table")
    hints = get_type_hints(settings)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(hints)})")
        values[key] = _coerce(f"{name}.{key}", hints[key], value)
    return settings(**values)


def _parse_types(table: Any) -> dict[int, TypeSettings]:
    if not isinstance(table, Mapping):
        raise ConfigError("[types]: must be tables named by task type, like [types.7]")
    parsed: dict[int, TypeSettings] = {}
    for name, overrides in table.items():
        # isascii too: isdigit() accepts '¹', which int() refuses with a ValueError.
        if not (str(name).isascii() and str(name).isdigit()) or not 1 <= int(name) <= MAX_TYPE:
            raise ConfigError(f"[types.{name}]: a task type is an integer in 1..{MAX_TYPE}")
        parsed[int(name)] = _parse_section(f"types.{name}", TypeSettings, overrides)
    return parsed


def _coerce(key: str, wanted: Any, value: Any) -> Any:
    """Check value against the field's type; ints are accepted where seconds are floats."""
    if isinstance(wanted, types.UnionType):  # `int | None` and the like
        options = [t for t in wanted.__args__ if t is not type(None)]
        return _coerce(key, options[0], value)
    if wanted == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: must be a list of strings, got {value!r}")
        return tuple(value)
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if wanted is bool and isinstance(value, bool):
        return value
    if isinstance(value, bool) or not isinstance(value, wanted):
        shown = type(value).__name__ if key.endswith("secret") else repr(value)  # never echo it
        raise ConfigError(f"{key}: must be {wanted.__name__}, got {shown}")
    return value


def _known_sections() -> str:
    return ", ".join([*_SECTIONS, "types.N"])


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}: must be at least {low}, got {value}")


def _at_most(key: str, value: float, high: float) -> None:
    if value > high:
        raise ConfigError(f"{key}: must be at most {high:g}, got {value:g}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value}")


def check_delays(where: str, retry: RetrySettings) -> None:
    """Refuse a cap below the first delay: every retry would wait max_delay, not back off."""
    if retry.max_delay < retry.initial_delay:
        raise ConfigError(
            f"{where}: max_delay ({retry.max_delay:g}) is less than initial_delay "
            f"({retry.initial_delay:g}); the cap must be at least the first delay"
        )


def _check_retry(prefix: str, values: Mapping[str, Any]) -> None:
    if values.get("max_attempts") is not None:
        _at_least(f"{prefix}.max_attempts", values["max_attempts"], 1)
        _at_most(f"{prefix}.max_attempts", values["max_attempts"], MAX_ATTEMPTS)
    for key in ("initial_delay", "max_delay"):
        if values.get(key) is not None:
            _at_least(f"{prefix}.{key}", values[key], 0)
            _at_most(f"{prefix}.{key}", values[key], MAX_DELAY_SECONDS)
    if values.get("timeout") is not None:
        _positive(f"{prefix}.timeout", values["timeout"])


def _check_flow(prefix: str, overrides: TypeSettings) -> None:
    if overrides.concurrency is not None and not 1 <= overrides.concurrency <= MAX_TYPE_CONCURRENCY:
        raise ConfigError(
            f"{prefix}.concurrency: must be in 1..{MAX_TYPE_CONCURRENCY} (runs of the type in "
            f"flight per worker process), got {overrides.concurrency}"
        )
    if overrides.rate is not None and not MIN_RATE <= overrides.rate <= MAX_RATE:
        raise ConfigError(
            f"{prefix}.rate: must be in {MIN_RATE:g}..{MAX_RATE:g} (starts per second across "
            f"all workers), got {overrides.rate:g}"
        )
    if overrides.burst is not None:
        if overrides.rate is None:
            raise ConfigError(f"{prefix}.burst: needs {prefix}.rate (the burst of a start rate)")
        if not 1 <= overrides.burst <= MAX_BURST:
            raise ConfigError(f"{prefix}.burst: must be in 1..{MAX_BURST}, got {overrides.burst}")


def _check_retention(retention: RetentionSettings) -> None:
    for key in ("confirmed", "failed"):
        seconds = getattr(retention, key)
        if not 0 <= seconds <= MAX_RETENTION_SECONDS:
            raise ConfigError(
                f"retention.{key}: must be in 0..{MAX_RETENTION_SECONDS} seconds (0 keeps "
                f"tasks forever), got {seconds}"
            )
    _positive("retention.interval", retention.interval)


def _check_web(web: WebSettings) -> None:
    if not 1 <= web.port <= 65535:
        raise ConfigError(f"web.port: must be in 1..65535, got {web.port}")
    if web.auth not in WEB_AUTH_MODES:
        raise ConfigError(f"web.auth: must be one of {', '.join(WEB_AUTH_MODES)}, got {web.auth!r}")
    if web.auth != "none" and len(web.secret) < MIN_WEB_SECRET_CHARS:
        # The message never shows the secret, only what is wrong with it.
        raise ConfigError(
            f"web.secret: auth = {web.auth!r} needs a secret of at least {MIN_WEB_SECRET_CHARS} "
            "characters (set RETRYD_WEB_SECRET)"
        )
    if web.auth == "basic" and (not web.user or ":" in web.user):
        raise ConfigError("web.user: must be a non-empty name without ':'")


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a layer gives (None: it leaves that setting to the layer below)."""
    return {name: value for name, value in values.items() if value is not None}
