"""deploy/grafana-dashboard.json and deploy/alerts.yml ask only for series retryd really serves.

The set of names is taken from a real scrape of a real worker's /metrics (on a real Redis), not
from a list kept by hand, so a renamed metric breaks this test rather than a dashboard panel.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from store import Record, RedisStore
from tests.metrics.client import get
from tests.metrics.conftest import listening
from tests.test_container import METRICS, promql_metric_names
from worker.config import Config
from worker.loop import Worker
from worker.registry import Registry, handler

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_OWN = {"up"}  # per-target series Prometheus itself adds


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, rows' nested panels included."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels += [panel, *panel.get("panels", [])]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


async def served_series(store: RedisStore) -> set[str]:
    """Every series name a worker's /metrics serves, with one task of each kind stored."""
    registry = Registry()

    @handler(type=1, registry=registry)
    async def ok(record: Record) -> None:
        return None

    await store.put_all(Record("done", 1, b"x"), Record("no-handler", 2, b"x"))
    config = Config.from_mapping({"worker": {"poll_interval": 0.05}})
    config = dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, port=0))
    worker = Worker(store, registry, config)
    await worker.run(burst=True)
    async with listening(store, metrics=worker.metrics, worker=worker) as port:
        body = (await get(port, "/metrics")).body.decode()
    return {
        line.split("{")[0].split(" ")[0]
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


async def test_every_dashboard_and_alert_query_names_a_served_metric(
    redis_store: RedisStore,
) -> None:
    served = await served_series(redis_store) | PROMETHEUS_OWN
    queries = dashboard_queries()
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    queries += [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]
    assert len(queries) > 20
    for title, expr in queries:
        names = promql_metric_names(expr)
        assert names, f"{title}: {expr!r} selects no series"
        assert names <= served, f"{title}: {sorted(names - served)} are not served by retryd"


async def test_the_documented_metric_names_are_the_served_ones(redis_store: RedisStore) -> None:
    """tests/test_container.py's list (used for the offline checks) is what a scrape shows."""
    served = await served_series(redis_store)
    families = {name.removesuffix("_total") for name in served if not name.endswith("_created")}
    for suffix in ("_bucket", "_sum", "_count"):
        families = {name.removesuffix(suffix) for name in families}
    expected = {name.removesuffix("_total") for name in METRICS - PROMETHEUS_OWN}
    assert families == expected


def test_the_dashboard_uses_a_datasource_variable() -> None:
    """Importable anywhere: every panel and target reads the ${datasource} variable."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
