"""One adapter module per system; each is imported only when that system runs."""

from __future__ import annotations

import importlib

from bench.peers.base import System, Unavailable

__all__ = ["POSTGRES_SYSTEM_NAMES", "SYSTEM_NAMES", "System", "Unavailable", "load"]

_MODULES = {
    "retryd": "bench.peers.retryd_peer",
    "retryd-def": "bench.peers.retryd_peer",
    "huey": "bench.peers.huey_peer",
    "dramatiq": "bench.peers.dramatiq_peer",
    "arq": "bench.peers.arq_peer",
    "saq": "bench.peers.saq_peer",
    "rq": "bench.peers.rq_peer",
    # References, not peers: the body run by the barest loop that takes jobs from Redis.
    "bare-loop": "bench.peers.bare_peer",
    "bare-async": "bench.peers.bare_peer",
}
SYSTEM_NAMES = tuple(_MODULES)
# The PostgreSQL benchmark's systems (python -m bench.postgres), beside retryd on Redis.
_MODULES |= {
    "retryd-pg": "bench.peers.retryd_pg_peer",
    "procrastinate": "bench.peers.procrastinate_peer",
}
# bare-async, the reference with the same async body, shows the lag this machine allows at all.
POSTGRES_SYSTEM_NAMES = ("retryd-pg", "procrastinate", "retryd", "bare-async")


def load(name: str) -> System:
    """The adapter for name; Unavailable if its package is not installed (the `bench` extra)."""
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        hint = "pip install --no-deps arq==0.28.0" if name == "arq" else "pip install -e '.[bench]'"
        if name == "procrastinate":
            hint = "pip install procrastinate==3.10.0"
        raise Unavailable(f"{name}: cannot import ({exc}); {hint}") from exc
    variants = {"retryd-def": "PLAIN", "bare-async": "ASYNC"}
    system: System = getattr(module, variants.get(name, "SYSTEM"))
    return system
