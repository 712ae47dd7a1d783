"""deploy/alerts.yml and deploy/prometheus.yml through Prometheus' own promtool.

`promtool check config` (prometheus.yml is valid outside compose too), `check rules`, and the
unit tests in deploy/alerts.test.yml, which must give every rule a case where it fires and one
where it must not. promtool comes with Debian's `prometheus` package (.ci/run installs it); where
it is missing these tests are skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install prometheus; .ci/run does)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool_path = shutil.which("promtool")
    assert promtool_path is not None
    return subprocess.run(
        [promtool_path, *args], capture_output=True, text=True, timeout=120, check=False
    )


def alert_names() -> set[str]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def unit_test_cases() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text(encoding="utf-8"))
    return [case for test in document["tests"] for case in test["alert_rule_test"]]


@needs_promtool
def test_prometheus_config_is_valid_from_a_checkout() -> None:
    """prometheus.yml and the rule file it names load where they lie, not only in compose."""
    result = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


@needs_promtool
def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", str(DEPLOY / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    """The rules fire when, and only when, deploy/alerts.test.yml says, with those texts."""
    result = promtool("test", "rules", str(DEPLOY / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = unit_test_cases()
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert firing == alert_names()
    assert quiet == alert_names()
