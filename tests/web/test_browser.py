"""The dashboard in a real headless browser: Debian's chromium, driven by playwright.

Each test starts `retryd web` (and, to see a retried task confirmed, `retryd run`) as real
processes on the test's namespace, and uses the pages as an operator would: links, the search
box, buttons, the keyboard. The screenshots of docs/dashboard.md are taken here: they go to
$RETRYD_WEB_SCREENSHOTS when it is set (docs/dashboard to refresh the docs), else to tmp_path.

No browser is downloaded: playwright drives /usr/bin/chromium (apt-get install chromium). In CI
(CI=true) a missing chromium fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store import State, SyncRedisStore
from tests.servers import free_port, wait_for
from tests.web.conftest import SECRET, task_record

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"

if not Path(CHROMIUM).exists():
    reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)  # CI installs it: a missing browser is a broken CI
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import (  # noqa: E402
    Browser,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

LAPTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

Web = Callable[..., str]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A laptop-sized tab whose clock is in Paris, so times must be converted to show."""
    context = browser.new_context(viewport=LAPTOP, timezone_id="Europe/Paris", locale="en-GB")
    yield context.new_page()
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RETRYD_WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def tasks(redis_url: str, namespace: str) -> Iterator[SyncRedisStore]:
    with SyncRedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


def _env(redis_url: str, namespace: str, **settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    return {**clean, "RETRYD_REDIS_URL": redis_url, "RETRYD_REDIS_NAMESPACE": namespace,
            "RETRYD_METRICS_PORT": "0", **settings}  # fmt: skip


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()  # by its pid: only what this test started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def web(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Web]:
    """web(**RETRYD_WEB_* settings) -> the base URL of a `retryd web` process serving them."""
    with contextlib.ExitStack() as stack:

        def start(redis: str | None = None, **settings: str) -> str:
            port = free_port()
            env = _env(redis or redis_url, namespace, RETRYD_WEB_PORT=str(port), **settings)
            log = tmp_path / f"web-{port}.log"
            proc = stack.enter_context(
                _process([sys.executable, "-m", "worker.cli", "web"], env, log)
            )
            wait_for(lambda: proc.poll() is not None or _listening(port), "retryd web to listen")
            assert proc.poll() is None, log.read_text()
            return f"http://127.0.0.1:{port}"

        yield start


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@pytest.fixture
def worker(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[None]:
    """A `retryd run` worker with the example handlers (type 1 logs and confirms)."""
    argv = [sys.executable, "-m", "worker.cli", "run"]
    with _process(argv, _env(redis_url, namespace), tmp_path / "worker.log"):
        yield


def _put(
    store: SyncRedisStore,
    task_id: str,
    state: State,
    data: bytes,
    *,
    failed_attempts: int = 0,
    task_type: int = 1,
) -> None:
    store.put_all(
        task_record(
            task_id, state=state, data=data, failed_attempts=failed_attempts, task_type=task_type
        )
    )


def _sample(store: SyncRedisStore) -> None:
    for n in range(12):
        _put(store, f"invoice-{n:04}", State.PENDING, b'{"invoice": %d}' % n)
    for n in range(3):
        _put(store, f"sent-{n}", State.CONFIRMED, b"ok")
    _put(
        store,
        "invoice-0042",
        State.FAILED,
        b'{"invoice": 42, "to": "ada@example.com"}',
        failed_attempts=10,
    )
    _put(store, "webhook-7", State.FAILED, b"\x89PNG\r\n\x1a\n\x00\x00", failed_attempts=3)


def test_every_page_loads_and_search_finds_a_task(
    page: Page, web: Web, tasks: SyncRedisStore, shots: Path
) -> None:
    _sample(tasks)
    page.goto(web())
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator(".cards")).to_contain_text("Failed2")
    # Live refresh: a task put now shows up within a refresh (5 s), with no navigation.
    expect(page.get_by_role("button", name="Pause live refresh")).to_have_attribute(
        "aria-pressed", "true"
    )
    _put(tasks, "late-arrival", State.PENDING, b"")
    expect(page.locator(".cards")).to_contain_text("Pending13", timeout=12_000)

    page.get_by_role("link", name="Tasks", exact=True).click()
    expect(page.get_by_role("table")).to_contain_text("invoice-0042")
    page.get_by_label("State").select_option("pending")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("table")).to_contain_text("invoice-0011")
    page.screenshot(path=shots / "tasks.png", full_page=True)

    page.get_by_label("Task id").fill("invoice-0042")
    page.get_by_label("Task id").press("Enter")
    expect(page.get_by_role("heading", name="Task invoice-0042")).to_be_visible()
    page.get_by_role("link", name="JSON").click()
    expect(page.locator("pre.data")).to_contain_text('"to": "ada@example.com"')
    # The browser is in Paris: times are shown in its zone, the UTC text kept as a tooltip.
    expect(page.locator("footer")).to_contain_text("Europe/Paris")
    created = page.locator("dd time").last
    expect(created).to_have_attribute("title", re.compile(r"UTC$"))
    expect(created).not_to_contain_text("UTC")
    page.screenshot(path=shots / "task.png", full_page=True)

    page.goto(web() + "/task?id=webhook-7&view=hex")
    expect(page.locator("pre.data")).to_contain_text("89 50 4e 47 0d 0a 1a 0a")
    page.get_by_label("Task id").fill("no-such-task")
    page.get_by_label("Task id").press("Enter")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator("main")).to_contain_text("task 'no-such-task' not found")


def test_tasks_filtered_by_type_with_the_type_select(
    page: Page, web: Web, tasks: SyncRedisStore
) -> None:
    _put(tasks, "mail-1", State.FAILED, b"", task_type=3)
    _put(tasks, "sms-1", State.FAILED, b"", task_type=4)
    page.goto(web() + "/tasks?state=failed")
    expect(page.get_by_role("table")).to_contain_text("sms-1")
    page.get_by_label("Type").select_option("3")
    page.get_by_role("button", name="Show").click()
    table = page.get_by_role("table")
    expect(table).to_contain_text("of type 3, by next attempt")
    expect(table).to_contain_text("mail-1")
    expect(table).not_to_contain_text("sms-1")
    expect(page.get_by_role("link", name="Retry all failed of type 3…")).to_be_visible()


def test_overview_shows_workers_types_and_throughput(
    page: Page, web: Web, tasks: SyncRedisStore, worker: None, shots: Path
) -> None:
    _sample(tasks)
    page.goto(web())
    # The worker's first heartbeat is the chart's baseline; what it runs afterwards is drawn.
    workers = page.locator("section:has(#workers-title) tbody tr")
    _reload_until(page, lambda: workers.count() == 1)
    for n in range(5):
        _put(tasks, f"report-{n}", State.PENDING, b"monthly report")
    # Type 2 is the webhook handler: data that is no webhook spec fails at once (Permanent).
    _put(tasks, "webhook-bad", State.PENDING, b"not json", task_type=2)
    chart = page.locator("svg.chart")
    _reload_until(page, lambda: chart.locator("rect.confirmed, rect.failed").count() == 2, 30)
    expect(page.get_by_role("img")).to_have_accessible_name(re.compile(r"\d+ runs confirmed"))
    expect(page.get_by_role("table").first).to_contain_text("1")
    page.screenshot(path=shots / "overview.png", full_page=True)


def _reload_until(page: Page, holds: Callable[[], bool], seconds: float = 20) -> None:
    for _ in range(int(seconds * 2)):
        if holds():
            return
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"the page never showed what was awaited ({page.url})")


def test_a_phone_sees_the_same_pages(
    browser: Browser, web: Web, tasks: SyncRedisStore, shots: Path
) -> None:
    _sample(tasks)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = context.new_page()
    base = web()
    for path, name in [("/", "overview-phone"), ("/tasks?state=pending", "tasks-phone")]:
        phone.goto(base + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways on a phone ({width}px)"
        phone.screenshot(path=shots / f"{name}.png", full_page=True)
    context.close()


def test_retry_a_failed_task_and_see_it_confirmed(
    page: Page, web: Web, tasks: SyncRedisStore, worker: None, shots: Path
) -> None:
    _sample(tasks)
    page.goto(web() + "/task?id=invoice-0042")
    page.get_by_role("link", name="Retry…").click()
    expect(page.get_by_role("heading", name="Retry task invoice-0042?")).to_be_visible()
    page.screenshot(path=shots / "confirm-retry.png", full_page=True)
    assert tasks.get_by_task_id("invoice-0042").state is State.FAILED  # asking changed nothing
    page.get_by_role("button", name="Retry this task").click()
    expect(page.get_by_role("status")).to_contain_text("Retried")
    # The worker runs it: reload until the page says so.
    _reload_until(page, lambda: page.locator(".state").inner_text() == "confirmed")
    assert tasks.get_by_task_id("invoice-0042").state is State.CONFIRMED


def test_cancel_then_delete_a_task(
    page: Page, web: Web, tasks: SyncRedisStore, shots: Path
) -> None:
    _sample(tasks)
    page.goto(web() + "/task?id=invoice-0003")
    page.get_by_role("link", name="Cancel…").click()
    page.get_by_role("button", name="Cancel this task").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled: the task is failed")
    expect(page.locator("dd.failure")).to_contain_text("Cancelled: cancelled")
    page.screenshot(path=shots / "task-cancelled.png", full_page=True)
    page.get_by_role("link", name="Delete…").click()
    expect(page.locator("main")).to_contain_text("This cannot be undone.")
    page.get_by_role("button", name="Delete this task").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted task invoice-0003")
    page.get_by_label("Task id").fill("invoice-0003")
    page.get_by_label("Task id").press("Enter")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_retry_every_failed_task_of_a_type(
    page: Page, web: Web, tasks: SyncRedisStore, shots: Path
) -> None:
    _sample(tasks)
    page.goto(web())
    page.get_by_role("link", name="Retry 2 failed…").click()
    expect(page.get_by_role("heading")).to_have_text("Retry every failed task of type 1?")
    page.screenshot(path=shots / "confirm-retry-all.png", full_page=True)
    page.get_by_role("button", name="Retry 2 tasks").click()
    expect(page.get_by_role("status")).to_contain_text("Retried 2 failed tasks")
    assert tasks.count_by_state(State.FAILED) == 0


def test_an_action_without_its_csrf_token_is_refused(
    page: Page, web: Web, tasks: SyncRedisStore, shots: Path
) -> None:
    _sample(tasks)
    page.goto(web() + "/task/retry?id=invoice-0042")
    page.locator("input[name=csrf]").evaluate("field => field.remove()")
    page.get_by_role("button", name="Retry this task").click()
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    page.screenshot(path=shots / "refused.png", full_page=True)
    assert tasks.get_by_task_id("invoice-0042").state is State.FAILED


def test_read_only_shows_no_action(page: Page, web: Web, tasks: SyncRedisStore) -> None:
    _sample(tasks)
    base = web(RETRYD_WEB_READ_ONLY="true")
    page.goto(base + "/task?id=invoice-0042")
    expect(page.locator("header")).to_contain_text("read-only")
    expect(page.get_by_role("link", name=re.compile("…$"))).to_have_count(0)
    expect(page.get_by_role("button")).to_have_text(["Find"])
    response = page.goto(base + "/task/retry?id=invoice-0042")
    assert response is not None
    assert response.status == 403


def test_token_sign_in(page: Page, web: Web, tasks: SyncRedisStore, shots: Path) -> None:
    _sample(tasks)
    base = web(RETRYD_WEB_AUTH="token", RETRYD_WEB_SECRET=SECRET)
    page.goto(base + "/tasks")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the right one")
    page.get_by_label("Token").fill(SECRET)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_basic_auth(browser: Browser, web: Web) -> None:
    base = web(RETRYD_WEB_AUTH="basic", RETRYD_WEB_SECRET=SECRET)
    anonymous = browser.new_context()
    # A headless browser has no prompt to show: its request API sees the 401 itself.
    refused = anonymous.request.get(base)
    assert refused.status == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    anonymous.close()
    signed = browser.new_context(http_credentials={"username": "admin", "password": SECRET})
    response = signed.new_page().goto(base)
    assert response is not None
    assert response.status == 200
    signed.close()


def test_keyboard_alone_reaches_the_search_and_the_tasks(
    page: Page, web: Web, tasks: SyncRedisStore
) -> None:
    _sample(tasks)
    page.goto(web())
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(4):  # the brand link, Overview, Tasks, then the search box
        page.keyboard.press("Tab")
    expect(page.get_by_label("Task id")).to_be_focused()
    page.keyboard.type("sent-1")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Task sent-1")).to_be_visible()


def test_redis_down_shows_a_banner(page: Page, web: Web, shots: Path) -> None:
    base = web(redis=f"redis://127.0.0.1:{free_port()}/0")
    response = page.goto(base)
    assert response is not None
    assert response.status == 503
    expect(page.get_by_role("alert")).to_contain_text("Redis is unavailable")
    expect(page.locator("body")).not_to_contain_text("Traceback")
    page.screenshot(path=shots / "redis-down.png", full_page=True)


def test_chromium_is_debians(browser: Browser) -> None:
    """The browser is the system's chromium, not one downloaded by playwright."""
    assert shutil.which("chromium") == CHROMIUM
    assert re.match(r"\d+\.", browser.version)
