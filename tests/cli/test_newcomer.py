"""The first hour: what a newcomer types after reading the README, run as they would run it.

The console script `retryd` (not `python -m`, which would put the working directory on sys.path
by itself), from a project folder holding config.toml and the README's myapp/tasks.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store import Record, State, SyncRedisStore
from tests.cli.conftest import Result, Retryd
from worker.metrics import build_version

CONSOLE_SCRIPT = Path(sys.executable).with_name("retryd")

MYAPP_TASKS = """
from store import Record
from worker import handler


@handler(type=7, max_attempts=5, timeout=30)
async def send_invoice(record: Record) -> None:
    return None
"""


def console(cwd: Path, env: dict[str, str], *argv: str) -> Result:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), *argv], capture_output=True, cwd=cwd, env=env, timeout=60, check=False
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def test_version_prints_the_installed_version(retryd: Retryd) -> None:
    result = retryd("--version")
    assert (result.code, result.out.strip()) == (0, f"retryd {build_version()}")


def test_ls_without_state_lists_the_pending_tasks(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    """`retryd ls` alone answers with the work still to do instead of a usage error."""
    sync_store.put_all(Record("waiting-1", 1, b"x"), Record("waiting-2", 1, b"y"))
    result = retryd("ls", "--json")
    assert result.code == 0, result.err
    assert '"waiting-1"' in result.out
    assert '"waiting-2"' in result.out
    assert "pending" in retryd("ls", "--help").out


def test_the_readme_handler_module_in_the_working_directory_is_found(
    tmp_path: Path, cli_env: dict[str, str], sync_store: SyncRedisStore
) -> None:
    """myapp/tasks.py beside config.toml: `retryd check` imports it and `run` runs its tasks."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(MYAPP_TASKS, encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        '[handlers]\nmodules = ["handlers.examples", "myapp.tasks"]\n[metrics]\nport = 0\n',
        encoding="utf-8",
    )
    checked = console(tmp_path, cli_env, "check")
    assert checked.code == 0, checked.err
    assert "send_invoice" in checked.out
    sync_store.put_all(Record("invoice-42", 7, b"..."))
    ran = console(tmp_path, cli_env, "run", "--burst")
    assert ran.code == 0, ran.err
    assert sync_store.get_by_task_id("invoice-42").state == State.CONFIRMED


def test_check_warns_about_due_tasks_no_handler_is_registered_for(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    """Type 99 has no handler: its due tasks would wait forever; check says so (and stays 0)."""
    sync_store.put_all(Record("orphan-1", 99, b"x"), Record("orphan-2", 99, b"x"))
    result = retryd("check")
    assert result.code == 0, result.err
    assert (
        "warning:    2 tasks of type 99 are due and no handler has type 99: they wait, "
        "unclaimed, until one is registered"
    ) in result.out
    assert "type 1 " not in result.out  # handled types are not reported


def test_a_bad_environment_value_names_the_expected_type(retryd: Retryd) -> None:
    result = retryd("check", env={"RETRYD_WORKER_CONCURRENCY": "abc"})
    assert result.code == 2
    assert result.err.strip() == (
        "retryd: RETRYD_WORKER_CONCURRENCY: 'abc' is not an integer (like 32)"
    )


def test_the_cli_runs_without_the_postgres_extra(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`pip install .` (the README's quick start, and the image) brings no psycopg: every command
    still loads, and only `migrate` with a PostgreSQL URL asks for the extra."""
    without_psycopg = (
        "import sys; sys.modules['psycopg'] = None; from worker.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )

    def run(*argv: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-c", without_psycopg, *argv],
            capture_output=True,
            cwd=tmp_path,
            env=cli_env | {"RETRYD_REDIS_URL": "postgresql://127.0.0.1:1/nowhere"},
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())

    assert run("--version").code == 0
    migrate = run("migrate")
    assert (migrate.code, migrate.err.strip()) == (
        2,
        "retryd: a PostgreSQL URL needs the postgres extra: pip install 'retryd[postgres]'",
    )
