"""The Lua scripts, by name: each is one file in scripts/, prefixed with scripts/_lib.lua.

redis-py's register_script runs them by SHA (EVALSHA) and loads them again by itself when the
server's script cache was emptied (a restart, SCRIPT FLUSH), so no NOSCRIPT error escapes.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Literal, get_args

__all__ = ["SCRIPT_NAMES", "ScriptName", "source"]

ScriptName = Literal[
    "put_all",
    "update",
    "get_ready",
    "list_type",
    "count",
    "claim",
    "settle",
    "extend",
    "stats",
    "inspect",
    "delete",
    "cancel",
    "retry",
    "retry_failed",
    "prune",
    "count_by_type",
    "beat",
    "beats",
    "relist",
]
# Every script, in the order the Literal lists them: one list to extend, not two.
SCRIPT_NAMES: tuple[ScriptName, ...] = get_args(ScriptName)


@functools.cache
def source(name: ScriptName) -> str:
    """The full text sent to Redis: the script's flags line, the shared helpers, the body."""
    folder = files("store") / "scripts"
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    library = (folder / "_lib.lua").read_text(encoding="utf-8")
    flags = ""
    if body.startswith("#!"):
        flags, _, body = body.partition("\n")
        flags += "\n"
    return f"{flags}{library}\n{body}"
