"""`retryd web` as a process: its [web] settings, and the refusals that keep it from starting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import WebSettings, load_config
from worker.errors import ConfigError
from worker.web import check_exposure


def run_web(tmp_path: Path, redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "web"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean, "RETRYD_REDIS_URL": redis_url, **env},
        timeout=60,
        check=False,
    )


def test_web_settings_default_to_loopback_without_auth() -> None:
    web = load_config(None, {}).web
    assert (web.host, web.port, web.auth, web.read_only) == ("127.0.0.1", 9465, "none", False)


def test_web_settings_come_from_the_environment() -> None:
    env = {
        "RETRYD_WEB_AUTH": "token",
        "RETRYD_WEB_SECRET": "s" * 20,
        "RETRYD_WEB_READ_ONLY": "true",
        "RETRYD_WEB_PORT": "8080",
    }
    web = load_config(None, env).web
    assert (web.auth, web.secret, web.read_only, web.port) == ("token", "s" * 20, True, 8080)
    assert "s" * 20 not in repr(web)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RETRYD_WEB_AUTH": "oauth"}, "web.auth: must be one of none, basic, token"),
        ({"RETRYD_WEB_AUTH": "token"}, "web.secret: auth = 'token' needs a secret of at least 16"),
        ({"RETRYD_WEB_PORT": "70000"}, "web.port: must be in 1..65535"),
        ({"RETRYD_WEB_READ_ONLY": "3"}, "web.read_only: must be bool"),
    ],
)
def test_bad_web_settings_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, env)


def test_a_short_secret_is_refused_without_being_shown() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, {"RETRYD_WEB_AUTH": "basic", "RETRYD_WEB_SECRET": "hunter2"})
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_auth(host: str) -> None:
    check_exposure(WebSettings(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_an_exposed_address_without_auth_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="reachable from other machines"):
        check_exposure(WebSettings(host=host))
    check_exposure(WebSettings(host=host, auth="token", secret="t" * 16))


def test_retryd_web_refuses_to_start_exposed_without_auth(tmp_path: Path, redis_url: str) -> None:
    done = run_web(tmp_path, redis_url, RETRYD_WEB_HOST="0.0.0.0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "retryd: web.host: '0.0.0.0' is reachable from other machines, and web.auth is 'none': "
        "set web.auth to 'basic' or 'token' with web.secret (RETRYD_WEB_SECRET), or bind to "
        "127.0.0.1"
    ]


def test_compose_runs_the_dashboard_from_the_workers_image() -> None:
    """Same image, another command; published on the host's loopback only, behind a token."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    services = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    web = services["web"]
    assert web["image"] == services["retryd"]["image"]
    assert web["command"] == ["web"]
    assert web["ports"] == ["127.0.0.1:9465:9465"]
    environment = web["environment"]
    assert environment["RETRYD_WEB_AUTH"] == "token"
    assert environment["RETRYD_WEB_SECRET"] == "${RETRYD_WEB_SECRET:-}"  # never in the file
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
