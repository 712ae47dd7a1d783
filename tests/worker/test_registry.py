"""Registry: one handler per type, plain or async; modules imported by name, failures named."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker import ConfigError, Registry, handler
from worker.registry import import_handler_modules


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for throwaway handler modules, unimported afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_a_handler_is_found_by_its_type() -> None:
    registry = Registry()

    @handler(type=3, max_attempts=2, timeout=1.5, registry=registry)
    async def three(record: Any) -> None: ...

    @handler(type=1, registry=registry)
    def one(record: Any) -> None: ...

    assert registry.types() == [1, 3]
    spec = registry.get(3)
    assert spec is not None
    assert (spec.func, spec.is_async, spec.max_attempts, spec.timeout) == (three, True, 2, 1.5)
    one_spec = registry.get(1)
    assert one_spec is not None
    assert not one_spec.is_async
    assert registry.get(2) is None


def test_two_handlers_for_one_type_name_both() -> None:
    registry = Registry()

    @handler(type=5, registry=registry)
    async def first(record: Any) -> None: ...

    with pytest.raises(ConfigError) as caught:

        @handler(type=5, registry=registry)
        def second(record: Any) -> None: ...

    message = str(caught.value)
    assert "type 5" in message
    assert "test_two_handlers_for_one_type_name_both.<locals>.first" in message
    assert "test_two_handlers_for_one_type_name_both.<locals>.second" in message


def test_registering_the_same_function_twice_is_harmless() -> None:
    """A module imported twice (by two names in modules) must not fail start-up."""
    registry = Registry()

    async def once(record: Any) -> None: ...

    handler(type=5, registry=registry)(once)
    handler(type=5, registry=registry)(once)
    assert registry.types() == [5]


@pytest.mark.parametrize("bad_type", [0, -1, 2**32, True, "7"])
def test_a_type_outside_uint32_is_refused(bad_type: Any) -> None:
    with pytest.raises(ConfigError, match="type must"):
        handler(type=bad_type, registry=Registry())(lambda record: None)


def test_a_module_that_fails_to_import_is_named(module_dir: Path) -> None:
    (module_dir / "broken_handlers.py").write_text("raise RuntimeError('no database')\n")
    with pytest.raises(ConfigError, match=r"'broken_handlers'.*RuntimeError: no database"):
        import_handler_modules(["broken_handlers"])


def test_a_missing_module_is_named(module_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"handlers\.modules.*'no_such_handlers_module'"):
        import_handler_modules(["no_such_handlers_module"])


def test_a_module_with_a_syntax_error_is_named(module_dir: Path) -> None:
    (module_dir / "typo_handlers.py").write_text("def f(:\n")
    with pytest.raises(ConfigError, match=r"'typo_handlers'.*SyntaxError"):
        import_handler_modules(["typo_handlers"])


def test_importing_a_module_runs_its_decorators(module_dir: Path) -> None:
    (module_dir / "good_handlers.py").write_text(
        "from worker import handler\n"
        "from tests.worker.test_registry import IMPORTED\n"
        "@handler(type=9, registry=IMPORTED)\n"
        "async def nine(record): ...\n"
    )
    import_handler_modules(["good_handlers"])
    assert IMPORTED.types() == [9]


IMPORTED = Registry()
