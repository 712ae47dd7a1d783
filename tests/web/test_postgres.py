"""The dashboard on a PostgresStore: the same app and pages as on Redis (tests/web/test_pages.py,
test_actions.py), here on a namespace migrated in the session's real PostgreSQL database: the
overview, a task page, a type's pages, the actions, and a database that does not answer."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from store import Change, NotFoundError, Reason, State
from store.postgres import PostgresStore
from tests.pg import FAST_FAILURE_SECONDS, migrated_namespace, postgres_server, postgres_store
from tests.servers import free_port
from tests.web.conftest import BASE_URL, csrf_of, put_task
from worker.config import WebSettings
from worker.heartbeat import WorkerReport
from worker.web import Board, create_app
from worker.web.views import PAGE_SIZE

LABEL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def pg_store(postgres_url: str, namespace: str) -> AsyncIterator[PostgresStore]:
    async with postgres_store(postgres_url, namespace) as store:
        yield store


@asynccontextmanager
async def dashboard(store: PostgresStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(WebSettings(), Board(store), redis_label=LABEL)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


def card(html: str, title: str) -> str:
    match = re.search(rf"<dt>{title}</dt><dd>(?:<a [^>]*>)?([^<]*)", html)
    assert match, f"no {title!r} card in the page"
    return match.group(1)


async def test_overview_counts_by_state_and_type_and_lists_the_workers(
    pg_store: PostgresStore,
) -> None:
    for n in range(3):
        await put_task(pg_store, f"p-{n}", task_type=7)
    await put_task(pg_store, "f-0", state=State.FAILED, task_type=7)
    await put_task(pg_store, "c-0", state=State.CONFIRMED, task_type=2)
    report = WorkerReport("host-a", 41, "9.9", "2026-12-02T10:00:00Z", 32, [7], 3, {})
    await pg_store.beat("host-a:41:abc", report.encode(), forget_after_seconds=60)
    async with dashboard(pg_store) as client:
        page = await client.get("/")
    assert page.status_code == 200, page.text
    assert (card(page.text, "Pending"), card(page.text, "Ready now")) == ("3", "3")
    assert (card(page.text, "Failed"), card(page.text, "Confirmed")) == ("1", "1")
    rows = re.findall(r'<tr><th scope="row">(\d+)</th><td>(\d+)</td><td>(\d+)</td><td[^>]*>(\d+)<',
                      page.text)  # fmt: skip
    assert rows == [("2", "0", "1", "0"), ("7", "3", "0", "1")]
    assert "<td>host-a:41:abc</td>" in page.text
    assert "<td>3 / 32</td>" in page.text
    assert f'title="PostgreSQL (password hidden)">{LABEL}<' in page.text


async def test_task_page_shows_the_record_and_its_last_failure(pg_store: PostgresStore) -> None:
    record = await put_task(pg_store, "t-1", data=b'{"to":"ada"}')
    (held,) = (await pg_store.claim({1: 5}, limit=1, lease_seconds=30)).tasks
    reason = Reason("ConnectionError", "the payment API timed out")
    assert await pg_store.settle([Change(held.record, State.FAILED, 1, 0.0, reason)]) == [True]
    async with dashboard(pg_store) as client:
        page = await client.get("/task", params={"id": "t-1"})
        hexed = await client.get("/task", params={"id": "t-1", "view": "hex"})
        missing = await client.get("/task", params={"id": "no-such-task"})
    assert page.status_code == 200, page.text
    for label, value in [("State", "failed"), ("Failed attempts", "1"), ("Version", "3")]:
        assert re.search(rf"<dt>{label}</dt><dd>(<span[^>]*>)?{value}<", page.text), label
    assert f"<dt>Id</dt><dd>{record.id}</dd>" in page.text
    assert "{&#34;to&#34;:&#34;ada&#34;}" in page.text
    assert re.search(
        r"<dt>Last failure</dt><dd[^>]*><strong>[^<]*ConnectionError</strong>: the payment API",
        page.text,
    )
    assert "00000000  7b 22 74 6f 22 3a 22 61" in hexed.text
    assert missing.status_code == 404


async def test_tasks_of_one_type_page_through_by_next_attempt(pg_store: PostgresStore) -> None:
    """The per-type pages read list_by_type (tasks_type_due on PostgreSQL), both orders."""
    for n in range(PAGE_SIZE + 2):
        await put_task(pg_store, f"seven-{n:03}", state=State.FAILED, task_type=7)
    await put_task(pg_store, "eight", state=State.FAILED, task_type=8)
    async with dashboard(pg_store) as client:
        first = await client.get("/tasks", params={"state": "failed", "type": "7"})
        assert first.status_code == 200, first.text
        assert "of type 7, by next attempt, latest first" in first.text
        ids = re.findall(r">(seven-\d+|eight)</a>", first.text)
        next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert next_link
        second = await client.get(next_link.group(1).replace("&amp;", "&"))
        oldest = await client.get(
            "/tasks", params={"state": "failed", "type": "7", "order": "oldest"}
        )
    rest = re.findall(r">(seven-\d+|eight)</a>", second.text)
    assert (len(ids), len(rest)) == (PAGE_SIZE, 2)
    assert 'rel="next"' not in second.text
    every = ids + rest
    assert sorted(every) == [f"seven-{n:03}" for n in range(PAGE_SIZE + 2)]
    assert re.findall(r">(seven-\d+)</a>", oldest.text) == every[::-1][:PAGE_SIZE]


async def test_retry_cancel_and_delete_change_the_task_after_asking(
    pg_store: PostgresStore,
) -> None:
    await put_task(pg_store, "failed", state=State.FAILED, failed_attempts=10)
    await put_task(pg_store, "pending")
    await put_task(pg_store, "done", state=State.CONFIRMED)
    async with dashboard(pg_store) as client:
        confirm = await client.get("/task/retry", params={"id": "failed"})
        assert "Retry this task" in confirm.text
        assert (await pg_store.get_by_task_id("failed")).state is State.FAILED  # asked only
        token = csrf_of(client)
        retried = await client.post("/task/retry", data={"id": "failed", "csrf": token})
        assert retried.status_code == 303
        shown = await client.get(retried.headers["location"])
        assert "Retried: the task is pending again" in shown.text
        cancelled = await client.post("/task/cancel", data={"id": "pending", "csrf": token})
        assert cancelled.status_code == 303
        refused = await client.post("/task/cancel", data={"id": "done", "csrf": token})
        deleted = await client.post("/task/delete", data={"id": "done", "csrf": token})
        assert deleted.status_code == 303
    record = await pg_store.get_by_task_id("failed")
    assert (record.state, record.failed_attempts) == (State.PENDING, 0)
    assert (await pg_store.inspect("pending")).last_error is not None
    assert (await pg_store.get_by_task_id("pending")).state is State.FAILED
    assert refused.status_code == 409
    assert "only a pending task can be cancelled; nothing changed" in refused.text
    with pytest.raises(NotFoundError):
        await pg_store.get_by_task_id("done")


async def test_retry_all_failed_of_one_type_asks_with_the_count(pg_store: PostgresStore) -> None:
    for n in range(3):
        await put_task(pg_store, f"a-{n}", state=State.FAILED, task_type=7)
    await put_task(pg_store, "b-0", state=State.FAILED, task_type=8)
    async with dashboard(pg_store) as client:
        confirm = await client.get("/retry-failed", params={"type": "7"})
        assert "<strong>3</strong> failed tasks of type 7 will become pending" in confirm.text
        done = await client.post("/retry-failed", data={"type": "7", "csrf": csrf_of(client)})
        shown = await client.get(done.headers["location"])
    assert "Retried 3 failed tasks" in shown.text
    assert [c.failed for c in await pg_store.count_by_type()] == [0, 1]


async def fast_503(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """The page at path, a 503 that came within FAST_FAILURE_SECONDS."""
    started = time.monotonic()
    page = await client.get(path)
    assert time.monotonic() - started < FAST_FAILURE_SECONDS, path
    assert page.status_code == 503, path
    return page


async def test_a_database_that_does_not_answer_shows_a_banner_not_a_trace() -> None:
    """At once: the store does not wait its pool's timeout for a server refusing connections."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    async with PostgresStore.from_url(url, namespace="down") as store:
        app = create_app(WebSettings(), Board(store), redis_label=url)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for path in ("/", "/tasks", "/task?id=x", "/tasks?state=failed&type=7"):
                page = await fast_503(client, path)
                assert 'class="banner" role="alert">PostgreSQL is unavailable (' in page.text
                assert "Traceback" not in page.text


async def test_a_database_that_goes_away_shows_the_banner_at_once_and_comes_back() -> None:
    """The server of the dashboard's store crashes (immediate shutdown): each page is a 503 in
    well under the pool's timeout, and once the server is back the same store serves them."""
    with postgres_server() as server, migrated_namespace(server.url, "board") as namespace:
        async with PostgresStore.from_url(server.url, namespace=namespace) as store:
            await put_task(store, "p-0")
            async with dashboard(store) as client:
                assert (await client.get("/")).status_code == 200
                server.crash()
                for path in ("/", "/tasks", "/task?id=p-0", "/"):
                    page = await fast_503(client, path)
                    assert "PostgreSQL is unavailable (" in page.text
                server.start()
                page = await client.get("/")
                assert page.status_code == 200, page.text
                assert card(page.text, "Pending") == "1"
