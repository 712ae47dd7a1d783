"""Actions, read-only mode and sign-in: what the dashboard lets change, and who."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
import structlog

from store import NotFoundError, RedisStore, State
from tests.web.conftest import SECRET, Dashboard, csrf_of, csrf_token, put_task


async def test_retry_asks_first_then_makes_a_failed_task_pending(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1", state=State.FAILED, failed_attempts=10)
    async with dashboard() as client:
        detail = await client.get("/task", params={"id": "t-1"})
        assert 'href="/task/retry?id=t-1"' in detail.text
        confirm = await client.get("/task/retry", params={"id": "t-1"})
        assert "Retry this task" in confirm.text
        token = re.search(r'name="csrf" value="([^"]+)"', confirm.text)
        assert token
        assert token.group(1) == csrf_of(client)
        assert (await redis_store.get_by_task_id("t-1")).state is State.FAILED  # asked only
        done = await client.post("/task/retry", data={"id": "t-1", "csrf": token.group(1)})
        assert done.status_code == 303
        shown = await client.get(done.headers["location"])
    record = await redis_store.get_by_task_id("t-1")
    assert (record.state, record.failed_attempts) == (State.PENDING, 0)
    assert "Retried: the task is pending again" in shown.text


async def test_a_post_without_the_csrf_token_changes_nothing(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1", state=State.FAILED)
    async with dashboard() as client:
        await csrf_token(client)
        refused = [
            await client.post("/task/retry", data={"id": "t-1"}),
            await client.post("/task/retry", data={"id": "t-1", "csrf": "forged"}),
            await client.post(
                "/task/retry",
                data={"id": "t-1", "csrf": csrf_of(client)},
                headers={"origin": "https://evil.example"},
            ),
        ]
    for response in refused:
        assert response.status_code == 403
        assert "security token is missing or wrong" in response.text
    assert (await redis_store.get_by_task_id("t-1")).state is State.FAILED


async def test_retry_refuses_a_task_that_is_not_failed(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1")
    async with dashboard() as client:
        token = await csrf_token(client)
        response = await client.post("/task/retry", data={"id": "t-1", "csrf": token})
        missing = await client.post("/task/retry", data={"id": "nope", "csrf": token})
    assert response.status_code == 409
    assert "only a failed task can be retried" in response.text
    assert missing.status_code == 404
    assert (await redis_store.get_by_task_id("t-1")).version == 1


async def test_tampered_and_oversized_forms_are_refused(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1", state=State.FAILED)
    async with dashboard() as client:
        token = await csrf_token(client)
        no_id = await client.post("/task/retry", data={"csrf": token})
        garbled = await client.post(
            "/task/retry",
            content=b"\xff\xfe=1",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        huge = await client.post("/task/retry", data={"id": "t-1", "csrf": token, "x": "y" * 9000})
    assert no_id.status_code == 400
    assert garbled.status_code == 400
    assert huge.status_code == 413
    assert (await redis_store.get_by_task_id("t-1")).state is State.FAILED


async def test_read_only_offers_and_accepts_no_action(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1", state=State.FAILED)
    async with dashboard(read_only=True) as client:
        detail = await client.get("/task", params={"id": "t-1"})
        confirm = await client.get("/task/retry", params={"id": "t-1"})
        post = await client.post("/task/retry", data={"id": "t-1", "csrf": csrf_of(client)})
    assert "read-only" in detail.text
    assert "/task/retry" not in detail.text
    assert confirm.status_code == post.status_code == 403
    assert (await redis_store.get_by_task_id("t-1")).state is State.FAILED


async def test_basic_auth_asks_the_browser_for_a_password(dashboard: Dashboard) -> None:
    def basic(user: str, password: str) -> dict[str, str]:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"authorization": f"Basic {pair}"}

    async with dashboard(auth="basic", secret=SECRET) as client:
        anonymous = await client.get("/")
        wrong = await client.get("/", headers=basic("admin", SECRET + "x"))
        other_user = await client.get("/", headers=basic("root", SECRET))
        right = await client.get("/", headers=basic("admin", SECRET))
    assert anonymous.status_code == wrong.status_code == other_user.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith('Basic realm="retryd"')
    assert right.status_code == 200


async def test_token_auth_signs_in_by_form_or_bearer_header(dashboard: Dashboard) -> None:
    with structlog.testing.capture_logs() as logs:
        async with dashboard(auth="token", secret=SECRET) as client:
            anonymous = await client.get("/tasks")
            assert anonymous.status_code == 303
            assert anonymous.headers["location"] == "/login?next=%2Ftasks"
            form = await client.get(anonymous.headers["location"])
            assert 'type="password"' in form.text
            wrong = await client.post(
                "/login", data={"token": "guess", "next": "/tasks", "csrf": csrf_of(client)}
            )
            assert wrong.status_code == 401
            right = await client.post(
                "/login", data={"token": SECRET, "next": "/tasks", "csrf": csrf_of(client)}
            )
            assert (right.status_code, right.headers["location"]) == (303, "/tasks")
            assert (await client.get("/tasks")).status_code == 200
            assert SECRET not in str(client.cookies)
        async with dashboard(auth="token", secret=SECRET) as script:
            bearer = await script.get("/", headers={"authorization": f"Bearer {SECRET}"})
            assert bearer.status_code == 200
    assert SECRET not in repr(logs)


async def test_sign_in_never_redirects_to_another_site(dashboard: Dashboard) -> None:
    async with dashboard(auth="token", secret=SECRET) as client:
        await client.get("/login")
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            response = await client.post(
                "/login", data={"token": SECRET, "next": target, "csrf": csrf_of(client)}
            )
            assert response.headers["location"] == "/"


async def _confirm_and_post(client: httpx.AsyncClient, action: str, task_id: str) -> httpx.Response:
    confirm = await client.get(f"/task/{action}", params={"id": task_id})
    assert confirm.status_code == 200, confirm.text
    assert f'action="/task/{action}"' in confirm.text
    return await client.post(f"/task/{action}", data={"id": task_id, "csrf": csrf_of(client)})


async def test_cancel_fails_a_pending_task_with_its_reason(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1")
    async with dashboard() as client:
        detail = await client.get("/task", params={"id": "t-1"})
        assert 'href="/task/cancel?id=t-1"' in detail.text
        assert 'href="/task/retry?id=t-1"' not in detail.text  # only what applies is offered
        done = await _confirm_and_post(client, "cancel", "t-1")
        shown = await client.get(done.headers["location"])
    assert (await redis_store.get_by_task_id("t-1")).state is State.FAILED
    assert "Cancelled: the task is failed." in shown.text
    assert re.search(
        r"<dt>Last failure</dt><dd[^>]*><strong>[^<]*Cancelled</strong>: cancelled", shown.text
    )


async def test_delete_removes_the_task_for_good(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "t-1", state=State.CONFIRMED)
    async with dashboard() as client:
        confirm = await client.get("/task/delete", params={"id": "t-1"})
        assert "This cannot be undone." in confirm.text
        done = await _confirm_and_post(client, "delete", "t-1")
        shown = await client.get(done.headers["location"])
        gone = await client.get("/task", params={"id": "t-1"})
    assert "Deleted task <code>t-1</code>." in shown.text
    assert gone.status_code == 404
    with pytest.raises(NotFoundError):
        await redis_store.get_by_task_id("t-1")


async def test_retry_all_failed_of_one_type_asks_with_the_count(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    for n in range(3):
        await put_task(redis_store, f"a-{n}", state=State.FAILED, task_type=7)
    await put_task(redis_store, "b-0", state=State.FAILED, task_type=8)
    async with dashboard() as client:
        overview = await client.get("/")
        assert 'href="/retry-failed?type=7">Retry 3 failed…' in overview.text
        confirm = await client.get("/retry-failed", params={"type": "7"})
        assert "<strong>3</strong> failed tasks of type 7 will become pending" in confirm.text
        done = await client.post("/retry-failed", data={"type": "7", "csrf": csrf_of(client)})
        shown = await client.get(done.headers["location"])
    assert "Retried 3 failed tasks" in shown.text
    assert [c.failed for c in await redis_store.count_by_type()] == [0, 1]


async def test_retry_all_of_every_type(dashboard: Dashboard, redis_store: RedisStore) -> None:
    await put_task(redis_store, "a", state=State.FAILED, task_type=7)
    await put_task(redis_store, "b", state=State.FAILED, task_type=8)
    async with dashboard() as client:
        confirm = await client.get("/retry-failed")
        assert "failed tasks of every type will become pending" in confirm.text
        await client.post("/retry-failed", data={"type": "", "csrf": csrf_of(client)})
    assert await redis_store.count_by_state(State.FAILED) == 0


async def test_actions_refuse_what_does_not_apply_and_write_nothing(
    dashboard: Dashboard, redis_store: RedisStore
) -> None:
    await put_task(redis_store, "done", state=State.CONFIRMED)
    async with dashboard() as client:
        token = await csrf_token(client)
        cancel = await client.post("/task/cancel", data={"id": "done", "csrf": token})
        unknown = await client.post("/task/explode", data={"id": "done", "csrf": token})
        bad_type = await client.post("/retry-failed", data={"type": "-1", "csrf": token})
        no_token = await client.post("/retry-failed", data={"type": ""})
    assert cancel.status_code == 409
    assert "only a pending task can be cancelled; nothing changed" in cancel.text
    assert unknown.status_code == 404
    assert bad_type.status_code == 400
    assert no_token.status_code == 403
    assert (await redis_store.get_by_task_id("done")).version == 1
