"""`retryd check`: config, handler modules and Redis, with exit 2 for the first two, 1 for Redis."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Retryd, assert_one_error_line

HANDLERS = """
from worker import handler

@handler(type=77, max_attempts=3)
def charge(record):
    return None
"""


def test_check_lists_the_registered_handlers_and_the_server(
    retryd: Retryd, tmp_path: Path, namespace: str
) -> None:
    (tmp_path / "my_handlers.py").write_text(HANDLERS)
    (tmp_path / "retryd.toml").write_text(
        '[handlers]\nmodules = ["handlers.examples", "my_handlers"]\n'
        "[types.77]\ntimeout = 9.5\n[types.99]\nmax_attempts = 2\n"
    )
    report = retryd("check", "--config", "retryd.toml", "--json")
    assert report.code == 0, report.err
    checked = json.loads(report.out)
    assert [(h["type"], h["handler"]) for h in checked["handlers"]] == [
        (1, "handlers.examples.log_task"),
        (2, "handlers.examples.post_webhook"),
        (77, "my_handlers.charge"),
    ]
    charge = checked["handlers"][2]
    assert (charge["max_attempts"], charge["timeout_seconds"], charge["async"]) == (3, 9.5, False)
    assert checked["namespace"] == namespace
    assert checked["redis"]["server"].split()[0] in ("redis", "valkey")
    assert "[types.99] is configured but no handler has type 99" in checked["warnings"]

    human = retryd("check", "--config", "retryd.toml")
    assert human.code == 0, human.err
    assert "my_handlers.charge" in human.out
    assert human.out.splitlines()[-1] == "ok"


def test_check_exits_2_on_a_config_mistake_or_a_handler_module_that_fails(
    retryd: Retryd, tmp_path: Path
) -> None:
    (tmp_path / "typo.toml").write_text("[worker]\nconcurrncy = 4\n")
    typo = retryd("check", "--config", "typo.toml")
    assert (typo.code, typo.out) == (2, "")
    assert_one_error_line(typo, "worker.concurrncy: unknown key")

    (tmp_path / "broken_handlers.py").write_text("import no_such_module_here\n")
    broken = retryd("check", env={"RETRYD_HANDLERS_MODULES": "broken_handlers"})
    assert (broken.code, broken.out) == (2, "")
    assert_one_error_line(broken, "cannot import 'broken_handlers'", "no_such_module_here")
