"""Config: every key read from TOML and from RETRYD_<SECTION>_<KEY>; each mistake named."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from store import Rate
from worker import ConfigError, Registry, handler, load_config
from worker.config import Config, RetrySettings, TypeSettings
from worker.registry import retry_settings

FULL = """
[redis]
url = "redis://127.0.0.1:6390/3"
namespace = "orders"

[worker]
concurrency = 7
batch = 11
lease = 12.5
shutdown_grace = 3.5
poll_interval = 0.25
processes = 3
one_cpu = false

[retry]
max_attempts = 4
initial_delay = 0.5
max_delay = 90.0
timeout = 8.0

[types.7]
max_attempts = 2
initial_delay = 3.0
max_delay = 30.0
timeout = 1.5
concurrency = 3
rate = 12.5
burst = 20

[handlers]
modules = ["handlers.examples", "tests.worker.handlers_e2e"]

[metrics]
host = "127.0.0.1"
port = 9999

[log]
level = "debug"
format = "json"

[embedded]
data_dir = "/tmp/retryd-embedded"

[store]
max_data_bytes = 4096
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_is_read_from_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), {})
    assert (config.redis.url, config.redis.namespace) == ("redis://127.0.0.1:6390/3", "orders")
    assert dataclasses.astuple(config.worker) == (7, 11, 12.5, 3.5, 0.25, 3, False)
    assert config.retry == RetrySettings(4, 0.5, 90.0, 8.0)
    assert config.types == {7: TypeSettings(2, 3.0, 30.0, 1.5, 3, 12.5, 20)}
    assert config.handlers.modules == ("handlers.examples", "tests.worker.handlers_e2e")
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9999)
    assert (config.log.level, config.log.format) == ("debug", "json")
    assert config.embedded.data_dir == "/tmp/retryd-embedded"
    assert config.store.max_data_bytes == 4096


def test_no_file_means_the_defaults() -> None:
    assert load_config(None, {}) == Config()


def test_whole_numbers_are_accepted_as_seconds(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[worker]\nlease = 5\n[types.3]\ntimeout = 2\n"), {})
    assert config.worker.lease == 5.0
    assert isinstance(config.worker.lease, float)
    assert config.types[3].timeout == 2.0


ENV: dict[str, tuple[str, Callable[[Config], Any]]] = {
    "RETRYD_REDIS_URL": ("redis://10.0.0.1:6379/0", lambda c: c.redis.url),
    "RETRYD_REDIS_NAMESPACE": ("billing", lambda c: c.redis.namespace),
    "RETRYD_WORKER_CONCURRENCY": ("64", lambda c: c.worker.concurrency),
    "RETRYD_WORKER_BATCH": ("500", lambda c: c.worker.batch),
    "RETRYD_WORKER_LEASE": ("45.5", lambda c: c.worker.lease),
    "RETRYD_WORKER_SHUTDOWN_GRACE": ("9", lambda c: c.worker.shutdown_grace),
    "RETRYD_WORKER_POLL_INTERVAL": ("0.5", lambda c: c.worker.poll_interval),
    "RETRYD_WORKER_PROCESSES": ("4", lambda c: c.worker.processes),
    "RETRYD_RETRY_MAX_ATTEMPTS": ("6", lambda c: c.retry.max_attempts),
    "RETRYD_RETRY_INITIAL_DELAY": ("0.1", lambda c: c.retry.initial_delay),
    "RETRYD_RETRY_MAX_DELAY": ("120", lambda c: c.retry.max_delay),
    "RETRYD_RETRY_TIMEOUT": ("15", lambda c: c.retry.timeout),
    "RETRYD_TYPES_7_TIMEOUT": ("2.5", lambda c: c.types[7].timeout),
    "RETRYD_TYPES_7_MAX_ATTEMPTS": ("9", lambda c: c.types[7].max_attempts),
    "RETRYD_TYPES_12_INITIAL_DELAY": ("4", lambda c: c.types[12].initial_delay),
    "RETRYD_TYPES_12_MAX_DELAY": ("40", lambda c: c.types[12].max_delay),
    "RETRYD_TYPES_7_CONCURRENCY": ("4", lambda c: c.types[7].concurrency),
    "RETRYD_TYPES_7_RATE": ("2.5", lambda c: c.types[7].rate),
    "RETRYD_TYPES_7_BURST": ("9", lambda c: c.types[7].burst),
    "RETRYD_HANDLERS_MODULES": ("a.b, c", lambda c: c.handlers.modules),
    "RETRYD_METRICS_HOST": ("127.0.0.2", lambda c: c.metrics.host),
    "RETRYD_METRICS_PORT": ("0", lambda c: c.metrics.port),
    "RETRYD_LOG_LEVEL": ("warning", lambda c: c.log.level),
    "RETRYD_LOG_FORMAT": ("json", lambda c: c.log.format),
    "RETRYD_EMBEDDED_DATA_DIR": ("/var/lib/retryd", lambda c: c.embedded.data_dir),
    "RETRYD_STORE_MAX_DATA_BYTES": ("100", lambda c: c.store.max_data_bytes),
}
ENV_EXPECTED: dict[str, Any] = {
    "RETRYD_WORKER_CONCURRENCY": 64,
    "RETRYD_WORKER_BATCH": 500,
    "RETRYD_WORKER_LEASE": 45.5,
    "RETRYD_WORKER_SHUTDOWN_GRACE": 9.0,
    "RETRYD_WORKER_POLL_INTERVAL": 0.5,
    "RETRYD_WORKER_PROCESSES": 4,
    "RETRYD_RETRY_MAX_ATTEMPTS": 6,
    "RETRYD_RETRY_INITIAL_DELAY": 0.1,
    "RETRYD_RETRY_MAX_DELAY": 120.0,
    "RETRYD_RETRY_TIMEOUT": 15.0,
    "RETRYD_TYPES_7_TIMEOUT": 2.5,
    "RETRYD_TYPES_7_MAX_ATTEMPTS": 9,
    "RETRYD_TYPES_12_INITIAL_DELAY": 4.0,
    "RETRYD_TYPES_12_MAX_DELAY": 40.0,
    "RETRYD_TYPES_7_CONCURRENCY": 4,
    "RETRYD_TYPES_7_RATE": 2.5,
    "RETRYD_TYPES_7_BURST": 9,
    "RETRYD_HANDLERS_MODULES": ("a.b", "c"),
    "RETRYD_METRICS_PORT": 0,
    "RETRYD_STORE_MAX_DATA_BYTES": 100,
}


@pytest.mark.parametrize("variable", list(ENV))
def test_each_key_is_overridden_from_the_environment(tmp_path: Path, variable: str) -> None:
    """RETRYD_<SECTION>_<KEY> wins over the file's value for that key, and only that key."""
    text, read = ENV[variable]
    config = load_config(write(tmp_path, FULL), {variable: text})
    assert read(config) == ENV_EXPECTED.get(variable, text)
    assert config.worker.concurrency == (64 if variable == "RETRYD_WORKER_CONCURRENCY" else 7)


def test_an_env_type_override_keeps_the_files_other_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), {"RETRYD_TYPES_7_TIMEOUT": "2.5"})
    assert config.types[7] == TypeSettings(2, 3.0, 30.0, 2.5, 3, 12.5, 20)


def test_variables_of_no_section_are_left_alone(tmp_path: Path) -> None:
    """RETRYD_TEST_REDIS_URL and the like belong to someone else."""
    env = {"RETRYD_TEST_REDIS_URL": "x", "RETRYD": "y", "OTHER_WORKER_BATCH": "z"}
    assert load_config(write(tmp_path, FULL), env) == load_config(write(tmp_path, FULL), {})


# (TOML text, what the error must name)
BAD_FILES = [
    ("[redis]\nurl = 5\n", "redis.url"),
    ("[redis]\nnamespace = []\n", "redis.namespace"),
    ('[worker]\nconcurrency = "many"\n', "worker.concurrency"),
    ("[worker]\nconcurrency = 0\n", "worker.concurrency"),
    ("[worker]\nconcurrency = 2.5\n", "worker.concurrency"),
    ("[worker]\nconcurrency = true\n", "worker.concurrency"),
    ("[worker]\nbatch = 0\n", "worker.batch"),
    ("[worker]\nlease = 0\n", "worker.lease"),
    ('[worker]\nlease = "30s"\n', "worker.lease"),
    ("[worker]\nshutdown_grace = -1\n", "worker.shutdown_grace"),
    ("[worker]\npoll_interval = 0\n", "worker.poll_interval"),
    ("[retry]\nmax_attempts = 0\n", "retry.max_attempts"),
    ("[retry]\nmax_attempts = 1.5\n", "retry.max_attempts"),
    ("[retry]\ninitial_delay = -1\n", "retry.initial_delay"),
    ("[retry]\nmax_delay = -0.5\n", "retry.max_delay"),
    ("[retry]\ntimeout = 0\n", "retry.timeout"),
    ("[types.7]\ntimeout = 0\n", "types.7.timeout"),
    ("[types.7]\nmax_attempts = 0\n", "types.7.max_attempts"),
    ('[types.7]\ninitial_delay = "x"\n', "types.7.initial_delay"),
    ("[types.0]\ntimeout = 1\n", "types.0"),
    ("[types.abc]\ntimeout = 1\n", "types.abc"),
    ("[types.4294967296]\ntimeout = 1\n", "types.4294967296"),
    ("[types.7]\nconcurrency = 0\n", "types.7.concurrency"),
    ("[types.7]\nconcurrency = -2\n", "types.7.concurrency"),
    ("[types.7]\nconcurrency = 100001\n", "types.7.concurrency"),
    ("[types.7]\nconcurrency = 2.5\n", "types.7.concurrency"),
    ('[types.7]\nconcurrency = "2"\n', "types.7.concurrency"),
    ("[types.7]\nrate = 0\n", "types.7.rate"),
    ("[types.7]\nrate = -1.5\n", "types.7.rate"),
    ("[types.7]\nrate = 0.00001\n", "types.7.rate"),
    ("[types.7]\nrate = 100000.5\n", "types.7.rate"),
    ("[types.7]\nrate = nan\n", "types.7.rate"),
    ("[types.7]\nrate = inf\n", "types.7.rate"),
    ("[types.7]\nrate = true\n", "types.7.rate"),
    ("[types.7]\nburst = 5\n", "types.7.burst"),  # a burst without a rate
    ("[types.7]\nrate = 5\nburst = 0\n", "types.7.burst"),
    ("[types.7]\nrate = 5\nburst = 100001\n", "types.7.burst"),
    ("[types.7]\nrate = 5\nburst = 2.5\n", "types.7.burst"),
    ('[handlers]\nmodules = "handlers.examples"\n', "handlers.modules"),
    ("[handlers]\nmodules = [1]\n", "handlers.modules"),
    ("[metrics]\nport = 70000\n", "metrics.port"),
    ("[metrics]\nport = -1\n", "metrics.port"),
    ("[metrics]\nhost = 1\n", "metrics.host"),
    ('[log]\nlevel = "loud"\n', "log.level"),
    ('[log]\nformat = "xml"\n', "log.format"),
    ("[embedded]\ndata_dir = 3\n", "embedded.data_dir"),
    ("[store]\nmax_data_bytes = 0\n", "store.max_data_bytes"),
    # unknown keys and sections
    ("[worker]\nconcurency = 4\n", "worker.concurency"),
    ("[retry]\nretries = 4\n", "retry.retries"),
    ("[types.7]\nbatch = 4\n", "types.7.batch"),
    ("[redis]\nhost = 'localhost'\n", "redis.host"),
    ("[workers]\nconcurrency = 4\n", "[workers]"),
    ("concurrency = 4\n", "[concurrency]"),
]


@pytest.mark.parametrize(("text", "key"), BAD_FILES, ids=[k for _, k in BAD_FILES])
def test_each_bad_value_unknown_key_or_section_names_it(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"(^|\W){re.escape(key)}\W"):
        load_config(write(tmp_path, text), {})


BAD_ENV = [
    ("RETRYD_WORKER_CONCURRENCY", "many", "RETRYD_WORKER_CONCURRENCY"),
    ("RETRYD_WORKER_CONCURRENCY", "0", "worker.concurrency"),
    ("RETRYD_WORKER_LEASE", "-3", "worker.lease"),
    ("RETRYD_WORKER_CONCURENCY", "4", "RETRYD_WORKER_CONCURENCY"),
    ("RETRYD_TYPES_7_TIMEOUT", "soon", "RETRYD_TYPES_7_TIMEOUT"),
    ("RETRYD_TYPES_7_TIMEOUT", "0", "types.7.timeout"),
    ("RETRYD_TYPES_7_CONCURRENCY", "0", "types.7.concurrency"),
    ("RETRYD_TYPES_7_RATE", "-1", "types.7.rate"),
    ("RETRYD_TYPES_7_RATE", "fast", "RETRYD_TYPES_7_RATE"),
    ("RETRYD_TYPES_7_BURST", "3", "types.7.burst"),
    ("RETRYD_TYPES_7_RETRIES", "3", "RETRYD_TYPES_7_RETRIES"),
    ("RETRYD_TYPES_X_TIMEOUT", "3", "types.x"),
    ("RETRYD_METRICS_PORT", "99999", "metrics.port"),
    ("RETRYD_LOG_FORMAT", "xml", "log.format"),
]


@pytest.mark.parametrize(("variable", "text", "key"), BAD_ENV, ids=[v for v, _, _ in BAD_ENV])
def test_each_bad_environment_override_names_it(
    tmp_path: Path, variable: str, text: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"(^|\W){re.escape(key)}\W"):
        load_config(write(tmp_path, ""), {variable: text})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_config(tmp_path / "nowhere.toml", {})


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[worker\nbatch = 1\n"), {})


def test_retry_settings_precedence_is_retry_then_decorator_then_types(tmp_path: Path) -> None:
    """[retry] < @handler(...) < [types.N]: operators get the last word without a code change."""
    config = Config.from_mapping(
        {
            "retry": {"max_attempts": 5, "initial_delay": 1, "max_delay": 100, "timeout": 60},
            "types": {"7": {"timeout": 3}},
        }
    )
    registry = Registry()

    @handler(type=7, max_attempts=2, timeout=9.0, registry=registry)
    async def seven(record: Any) -> None: ...

    @handler(type=8, initial_delay=0.25, registry=registry)
    async def eight(record: Any) -> None: ...

    seven_spec, eight_spec = registry.specs()
    assert retry_settings(config, seven_spec) == RetrySettings(2, 1.0, 100.0, 3.0)
    assert retry_settings(config, eight_spec) == RetrySettings(5, 0.25, 100.0, 60.0)


@pytest.mark.parametrize(
    ("variable", "text", "expected"),
    [
        ("RETRYD_WORKER_CONCURRENCY", "abc", "is not an integer (like 32)"),
        ("RETRYD_WORKER_LEASE", "30s", "is not a number of seconds (like 1.5)"),
        ("RETRYD_TYPES_7_MAX_ATTEMPTS", "x", "is not an integer (like 32)"),
        ("RETRYD_TYPES_7_TIMEOUT", "soon", "is not a number of seconds (like 1.5)"),
    ],
)
def test_an_unparsable_environment_value_names_the_expected_type(
    tmp_path: Path, variable: str, text: str, expected: str
) -> None:
    """Not just 'not a valid value': the variable, the value and what it should have been."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, ""), {variable: text})
    assert str(caught.value) == f"{variable}: {text!r} {expected}"


@pytest.mark.parametrize(
    ("text", "env", "where"),
    [
        ("[retry]\ninitial_delay = 60\nmax_delay = 10\n", {}, "retry"),
        ("", {"RETRYD_RETRY_MAX_DELAY": "0.5"}, "retry"),  # below the default initial 1.0
        ("[types.7]\nmax_delay = 0.5\n", {}, "types.7"),  # [retry]'s initial 1.0 applies
        ("[types.7]\ninitial_delay = 7200\n", {}, "types.7"),  # over [retry]'s max 3600
    ],
)
def test_a_max_delay_below_the_initial_delay_is_refused(
    tmp_path: Path, text: str, env: dict[str, str], where: str
) -> None:
    """A cap under the first delay would make every retry wait max_delay: refused, named."""
    with pytest.raises(ConfigError, match=rf"^{re.escape(where)}: max_delay \(.*\) is less than"):
        load_config(write(tmp_path, text), env)


def test_a_decorator_max_delay_below_the_initial_delay_is_refused() -> None:
    """The decorator's delays, combined with [retry] and [types.N], are checked the same way."""
    registry = Registry()

    @handler(type=7, max_delay=0.5, registry=registry)
    async def seven(record: Any) -> None: ...

    (spec,) = registry.specs()
    with pytest.raises(ConfigError, match=r"^type 7 .*max_delay \(0\.5\) is less than"):
        retry_settings(Config(), spec)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"worker": {"lease": 1e12}}, "worker.lease: must be at most 86400, got 1e+12"),
        ({"worker": {"batch": 2_000_000}}, "worker.batch: must be at most 100000, got 2e+06"),
        ({"worker": {"concurrency": 10**7}}, "worker.concurrency: must be at most 100000"),
        ({"retry": {"max_attempts": 10**12}}, "retry.max_attempts: must be at most 1e+06"),
        ({"retry": {"max_delay": 1e9}}, "retry.max_delay: must be at most 604800, got 1e+09"),
        (
            {"retry": {"initial_delay": 1e9, "max_delay": 1e9}},
            "retry.initial_delay: must be at most 604800",
        ),
        ({"types": {"7": {"max_delay": 1e10}}}, "types.7.max_delay: must be at most 604800"),
    ],
)
def test_absurdly_large_values_are_refused_at_start_naming_the_key(
    document: dict[str, Any], message: str
) -> None:
    """An upper bound on lease, delays and max_attempts: the start fails, not every claim."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_mapping(document)


def test_the_upper_bounds_themselves_are_accepted() -> None:
    config = Config.from_mapping(
        {
            "worker": {"lease": 86400.0, "batch": 100_000, "concurrency": 100_000},
            "retry": {"max_attempts": 1_000_000, "initial_delay": 604800, "max_delay": 604800},
            "types": {
                "7": {"concurrency": 100_000, "rate": 100_000, "burst": 100_000},
                "8": {"concurrency": 1, "rate": 0.0001, "burst": 1},
            },
        }
    )
    assert (config.worker.lease, config.retry.max_attempts) == (86400.0, 1_000_000)
    assert config.rate_for(7) == Rate(100_000.0, 100_000)
    assert config.rate_for(8) == Rate(0.0001, 1)


def test_flow_control_per_type_and_the_default_burst() -> None:
    """[types.N] concurrency, rate and burst, as the worker reads them; a rate's burst is one
    second's worth (at least 1) unless given; flow keys do not leak into retry settings."""
    config = Config.from_mapping(
        {
            "types": {
                "7": {"concurrency": 2, "rate": 2.5},
                "8": {"rate": 0.2},
                "9": {"rate": 40, "burst": 3, "timeout": 4},
            }
        }
    )
    assert (config.concurrency_for(7), config.concurrency_for(8), config.concurrency_for(5)) == (
        2,
        None,
        None,
    )
    assert config.rate_for(7) == Rate(per_second=2.5, burst=3)
    assert config.rate_for(8) == Rate(per_second=0.2, burst=1)
    assert config.rate_for(9) == Rate(per_second=40.0, burst=3)
    assert config.rate_for(5) is None
    assert config.retry_for(9) == RetrySettings(10, 1.0, 3600.0, 4.0)
