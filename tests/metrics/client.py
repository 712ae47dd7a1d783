"""A tiny HTTP client for the observability endpoints: urllib (a real client) in a thread."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Reply", "get", "get_json", "samples", "scrape", "value"]


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes


def _get_blocking(url: str) -> Reply:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http:// only)
            return Reply(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers["Content-Type"], error.read())


async def get(port: int, path: str) -> Reply:
    return await asyncio.to_thread(_get_blocking, f"http://127.0.0.1:{port}{path}")


async def get_json(port: int, path: str) -> tuple[int, Any]:
    reply = await get(port, path)
    assert reply.content_type == "application/json"
    return reply.status, json.loads(reply.body)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(port: int) -> Samples:
    reply = await get(port, "/metrics")
    assert reply.status == 200
    return samples(reply.body.decode())


def value(all_samples: Samples, name: str, **labels: str) -> float | None:
    """The sample named name with exactly these labels, or None when absent."""
    return all_samples.get((name, frozenset(labels.items())))
