"""The dashboard's pages on a real store: what each shows, and the status of each bad request."""

from __future__ import annotations

import json
import re

import httpx

from store import RedisStore, State
from tests.web.conftest import Dashboard, put_task
from worker.heartbeat import WorkerReport
from worker.web.views import PAGE_SIZE


async def test_overview_counts_tasks_by_state(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    """Each state's count is a link to that state's list; failed ones are flagged."""
    for n in range(3):
        await put_task(redis_store, f"p-{n}")
    await put_task(redis_store, "f-0", state=State.FAILED)
    async with dashboard() as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert _card(page.text, "Pending") == "3"
    assert _card(page.text, "Ready now") == "3"
    assert _card(page.text, "Failed") == "1"
    assert _card(page.text, "Confirmed") == "0"


def _card(html: str, title: str) -> str:
    match = re.search(rf"<dt>{title}</dt><dd>(?:<a [^>]*>)?([^<]*)", html)
    assert match, f"no {title!r} card in the page"
    return match.group(1)


async def test_tasks_lists_a_state_newest_first_and_pages(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    for n in range(PAGE_SIZE + 2):
        await put_task(redis_store, f"failed-{n:03}", state=State.FAILED)
    await put_task(redis_store, "a-pending-one")
    async with dashboard() as client:
        first = await client.get("/tasks", params={"state": "failed", "order": "newest"})
        ids = re.findall(r">(failed-\d+)</a>", first.text)
        assert ids[0] == f"failed-{PAGE_SIZE + 1:03}"
        assert len(ids) == PAGE_SIZE
        assert "a-pending-one" not in first.text
        next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert next_link
        second = await client.get(next_link.group(1).replace("&amp;", "&"))
    assert re.findall(r">(failed-\d+)</a>", second.text) == ["failed-001", "failed-000"]
    assert 'rel="next"' not in second.text


async def test_tasks_oldest_first(dashboard: Dashboard, redis_store: RedisStore) -> None:
    for n in range(3):
        await put_task(redis_store, f"t-{n}")
    async with dashboard() as client:
        page = await client.get("/tasks", params={"state": "pending", "order": "oldest"})
    assert re.findall(r">(t-\d)</a>", page.text) == ["t-0", "t-1", "t-2"]


async def test_search_by_exact_task_id_opens_the_task(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "order 42/é")
    async with dashboard() as client:
        found = await client.get("/tasks", params={"task_id": "order 42/é"}, follow_redirects=True)
        missing = await client.get("/tasks", params={"task_id": "order 4"}, follow_redirects=True)
    assert found.status_code == 200
    assert "Task <code>order 42/é</code>" in found.text
    assert missing.status_code == 404
    assert "task &#39;order 4&#39; not found" in missing.text


async def test_task_detail_shows_every_field_and_data_three_ways(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    record = await put_task(
        redis_store, "t-1", data=b'{"to":"ada","n":[1,2]}', state=State.FAILED, failed_attempts=4
    )
    async with dashboard() as client:
        text = await client.get("/task", params={"id": "t-1"})
        pretty = await client.get("/task", params={"id": "t-1", "view": "json"})
        hexed = await client.get("/task", params={"id": "t-1", "view": "hex"})
    for label, value in [("State", "failed"), ("Failed attempts", "4"), ("Version", "1")]:
        assert re.search(rf"<dt>{label}</dt><dd>(<span[^>]*>)?{value}<", text.text), label
    assert f"<dt>Id</dt><dd>{record.id}</dd>" in text.text
    assert "{&#34;to&#34;:&#34;ada&#34;" in text.text
    assert json.dumps({"to": "ada", "n": [1, 2]}, indent=2).replace('"', "&#34;") in pretty.text
    assert "00000000  7b 22 74 6f 22 3a 22 61" in hexed.text


async def test_binary_data_and_markup_are_shown_as_text(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "<script>alert(1)</script>", data=b"\xff\x00<b>")
    async with dashboard() as client:
        page = await client.get("/task", params={"id": "<script>alert(1)</script>"})
        as_json = await client.get(
            "/task", params={"id": "<script>alert(1)</script>", "view": "json"}
        )
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "not UTF-8 text" in page.text
    assert "&lt;b&gt;" in page.text
    assert "not JSON" in as_json.text


async def test_bad_requests_get_a_page_with_the_right_status(dashboard: Dashboard) -> None:
    async with dashboard() as client:
        cases = {
            "/task?id=no-such-task": (404, "not found"),
            "/task": (400, "needs ?id="),
            "/task?id=" + "x" * 1100: (400, "task_id: is 1100 bytes"),
            "/task?id=t&view=pdf": (400, "Unknown data view"),
            "/tasks?state=lost": (400, "Unknown state"),
            "/tasks?state=failed&after=1e9": (400, "numeric id"),
            "/tasks?order=random": (400, "Unknown order"),
            "/tasks?task_id=" + "y" * 5000: (414, "at most 4096 bytes"),
            "/nowhere": (404, "Not Found"),
        }
        for path, (status, fragment) in cases.items():
            page = await client.get(path)
            assert page.status_code == status, path
            assert fragment in page.text, path
            assert "Traceback" not in page.text


async def test_redis_down_shows_a_banner_not_a_trace(free_redis_url: str) -> None:
    """A Redis that refuses connections: every page is a 503 saying so."""
    from worker.config import WebSettings
    from worker.web import Board, create_app

    async with RedisStore.from_url(free_redis_url, namespace="down") as store:
        app = create_app(WebSettings(), Board(store), redis_label=free_redis_url)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/", "/tasks", "/task?id=x"):
                page = await client.get(path)
                assert page.status_code == 503, path
                assert 'class="banner" role="alert">Redis is unavailable (' in page.text
                assert "Traceback" not in page.text


async def test_overview_breaks_counts_down_by_type(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "a", task_type=7)
    await put_task(redis_store, "b", task_type=7, state=State.FAILED)
    await put_task(redis_store, "c", task_type=2, state=State.CONFIRMED)
    async with dashboard() as client:
        page = await client.get("/")
    rows = re.findall(r'<tr><th scope="row">(\d+)</th><td>(\d+)</td><td>(\d+)</td><td[^>]*>(\d+)<',
                      page.text)  # fmt: skip
    assert rows == [("2", "0", "1", "0"), ("7", "1", "0", "1")]


async def test_overview_lists_the_workers_that_beat(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    report = WorkerReport("host-a", 41, "9.9", "2026-12-02T10:00:00Z", 32, [1, 2], 3, {})
    await redis_store.beat("host-a:41:abc", report.encode(), forget_after_seconds=60)
    async with dashboard() as client:
        page = await client.get("/")
    assert "<td>host-a:41:abc</td>" in page.text
    assert "<td>3 / 32</td>" in page.text
    assert "<td>1, 2</td>" in page.text
    assert "silent" not in page.text


async def test_overview_says_when_no_worker_beats(dashboard: Dashboard) -> None:
    async with dashboard() as client:
        page = await client.get("/")
    assert "No worker has sent a heartbeat in the last 5 minutes." in page.text


async def test_tasks_of_one_type_by_next_attempt_page_through(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    """The type filter lists one type's tasks by next attempt, paged, offering the known types."""
    for n in range(PAGE_SIZE + 2):
        await put_task(redis_store, f"seven-{n:03}", state=State.FAILED, task_type=7)
    await put_task(redis_store, "eight", state=State.FAILED, task_type=8)
    async with dashboard() as client:
        first = await client.get("/tasks", params={"state": "failed", "type": "7"})
        assert first.status_code == 200
        assert "of type 7, by next attempt, latest first" in first.text
        assert re.findall(r'<option value="(\d+)"', first.text) == ["7", "8"]
        assert '<option value="7" selected>' in first.text
        ids = re.findall(r">(seven-\d+|eight)</a>", first.text)
        assert len(ids) == PAGE_SIZE
        assert "eight" not in ids
        assert "?type=7" in first.text  # retry-all offers this type only
        next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert next_link
        second = await client.get(next_link.group(1).replace("&amp;", "&"))
        rest = re.findall(r">(seven-\d+|eight)</a>", second.text)
        oldest = await client.get(
            "/tasks", params={"state": "failed", "type": "7", "order": "oldest"}
        )
    assert len(rest) == 2
    assert 'rel="next"' not in second.text
    every = ids + rest
    assert sorted(every) == [f"seven-{n:03}" for n in range(PAGE_SIZE + 2)]
    assert re.findall(r">(seven-\d+)</a>", oldest.text) == every[::-1][:PAGE_SIZE]


async def test_tasks_of_a_type_refuse_bad_input_with_400(dashboard: Dashboard) -> None:
    bad = [
        {"type": "0"},
        {"type": "4294967296"},
        {"type": "seven"},
        {"type": "7", "after_at": "soon", "after_id": "x"},
        {"type": "7", "after_at": "12"},
        {"type": "7", "after_at": "1" * 17, "after_id": "x"},
    ]
    async with dashboard() as client:
        pages = [await client.get("/tasks", params=params) for params in bad]
    assert [page.status_code for page in pages] == [400] * len(bad)
    assert "A task type is an integer in 1..4294967295." in pages[0].text
    assert "A task type is an integer" in pages[2].text
    assert "after_at (microseconds, an integer) with after_id" in pages[3].text
    assert "Traceback" not in "".join(page.text for page in pages)
