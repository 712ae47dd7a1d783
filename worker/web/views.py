"""The dashboard's pages and actions: each reads the request, asks the Board, renders a template.

Every action is two steps, so nothing changes on a click alone: a GET shows what will happen and
a form to confirm it; the POST, carrying the CSRF token, does it and redirects to the result.
Views never touch the store: they go through worker/web/board.py.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from store import TypeCursor
from store.record import MAX_TYPE, from_micros, to_micros
from worker.config import WebSettings
from worker.logs import error_kind
from worker.web.board import ACTIONS, LISTED_STATES, Board, Page, PageQuery
from worker.web.render import DATA_VIEWS, data_view
from worker.web.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    csrf_ok,
    is_authenticated,
    same_secret,
    session_value,
)

__all__ = ["WebError", "error_page", "path_for", "unavailable_page", "web_error_page"]

log = structlog.get_logger("retryd.web")

PAGE_SIZE = 50
STORE_TIMEOUT_SECONDS = 5.0  # a page waits this long for Redis, then shows the banner
# Retry-all moves 1,000 tasks per store call (~10 ms of Redis time each): 100k in seconds.
RETRY_ALL_TIMEOUT_SECONDS = 60.0
_FAILED_LOGIN_PAUSE_SECONDS = 1.0
_MAX_FORM_BYTES = 8192


class WebError(Exception):
    """Raised when a request cannot be answered as asked; the page says why, with status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    settings: WebSettings = request.app.state.settings
    context.setdefault("banner", None)
    page = request.app.state.templates.get_template(template).render(
        request=request,
        url_for=lambda name, **params: request.url_for(name, **params).path,
        csrf_token=request.state.csrf_token,
        csrf_field=CSRF_FIELD,
        read_only=settings.read_only,
        signed_in=settings.auth == "token" and is_authenticated(request, settings),
        redis_label=request.app.state.redis_label,
        server_name=server_name(request.app.state.redis_label),
        **context,
    )
    return HTMLResponse(page, status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status, title=title, message=message, banner=None)


async def web_error_page(request: Request, error: Exception) -> Response:
    assert isinstance(error, WebError)
    return error_page(request, error.status, error.title, error.message)


def server_name(label: str) -> str:
    """What the store's server is called on pages: the label is its (redacted) URL."""
    return "PostgreSQL" if label.lower().startswith(("postgresql:", "postgres:")) else "Redis"


def unavailable_page(request: Request, error: BaseException) -> HTMLResponse:
    server = server_name(request.app.state.redis_label)
    banner = (
        f"{server} is unavailable ({error_kind(error)}): nothing can be shown or changed "
        "until it answers again."
    )
    return render(
        request, "error.html", 503, title=f"{server} unavailable", message=banner, banner=banner
    )


def path_for(request: Request, name: str, **query: str) -> str:
    """This site's path for a route, with a query: redirects stay on whatever host was used."""
    path = request.url_for(name).path
    return f"{path}?{urlencode(query)}" if query else path


def _board(request: Request) -> Board:
    board: Board = request.app.state.board
    return board


async def healthz(request: Request) -> Response:
    """200 while the process serves requests: a liveness probe that never touches Redis."""
    return PlainTextResponse("ok\n")


async def overview(request: Request) -> Response:
    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
        facts = await _board(request).overview()
    retried = request.query_params.get("retried")
    return render(request, "overview.html", overview=facts, retried=retried, banner=None)


async def tasks(request: Request) -> Response:
    params = request.query_params
    search = params.get("task_id")
    if search is not None:
        return RedirectResponse(path_for(request, "task", id=search.strip()), 303)
    query = _page_query(params)
    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
        page = await _board(request).page(query)
    deleted = request.query_params.get("deleted")
    first_page = _first_page_params(query)
    return render(
        request,
        "tasks.html",
        query=query,
        page=page,
        states=LISTED_STATES,
        deleted=deleted,
        first_page=first_page,
        next_page=_next_page_params(first_page, page),
    )


def _first_page_params(query: PageQuery) -> dict[str, str]:
    params = {"state": str(query.state), "order": "newest" if query.newest_first else "oldest"}
    if query.task_type is not None:
        params["type"] = str(query.task_type)
    return params


def _next_page_params(first_page: dict[str, str], page: Page) -> dict[str, str] | None:
    """The query of the page after this one; None on the last page."""
    if page.next_after is not None:
        return first_page | {"after": str(page.next_after)}
    if page.next_after_due is not None:
        at = to_micros("after_at", page.next_after_due.next_attempt_at)
        return first_page | {"after_at": str(at), "after_id": page.next_after_due.task_id}
    return None


def _page_query(params: Any) -> PageQuery:
    state_name = params.get("state", "failed")
    state = LISTED_STATES.get(state_name)
    if state is None:
        raise WebError(
            400,
            "Bad request",
            f"Unknown state {state_name!r}: pick one of {', '.join(LISTED_STATES)}.",
        )
    order = params.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise WebError(400, "Bad request", f"Unknown order {order!r}: newest or oldest.")
    newest_first = order == "newest"
    task_type = _task_type(params.get("type"))
    if task_type is not None:
        after_due = _due_cursor(params.get("after_at"), params.get("after_id"))
        return PageQuery(state, newest_first, None, PAGE_SIZE, task_type, after_due)
    after_text = params.get("after")
    after = None
    if after_text is not None:
        if not after_text.isascii() or not after_text.isdigit() or len(after_text) > 19:
            raise WebError(400, "Bad request", "The page cursor must be a task's numeric id.")
        after = int(after_text)
    return PageQuery(state, newest_first, after, PAGE_SIZE)


def _due_cursor(at_text: str | None, task_id: str | None) -> TypeCursor | None:
    """A page-of-one-type cursor from its two query parameters (both or neither): the last
    task's next attempt in microseconds since the epoch, and its id."""
    if at_text is None and task_id is None:
        return None
    digits = (at_text or "").removeprefix("-")
    if task_id is None or not digits.isascii() or not digits.isdigit() or len(digits) > 16:
        raise WebError(
            400,
            "Bad request",
            "The page cursor must be after_at (microseconds, an integer) with after_id.",
        )
    return TypeCursor(from_micros(int(at_text or "")), task_id)


async def task(request: Request) -> Response:
    task_id = _task_id(request.query_params.get("id"))
    view = request.query_params.get("view", "text")
    if view not in DATA_VIEWS:
        raise WebError(400, "Bad request", f"Unknown data view {view!r}: text, json or hex.")
    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
        details = await _board(request).task(task_id)
    return render(
        request,
        "task.html",
        task=details.record,
        failure=details.last_error,
        actions=ACTIONS,
        data=data_view(details.record.data, view),
        views=DATA_VIEWS,
        done=request.query_params.get("done"),
        banner=None,
    )


def _task_id(value: str | None) -> str:
    if not value:
        raise WebError(400, "Bad request", "Which task? The address needs ?id=<task id>.")
    return value


async def confirm_action(request: Request) -> Response:
    """What an action on one task will do, and the form to confirm it."""
    _writable(request)
    action = _action(request)
    task_id = _task_id(request.query_params.get("id"))
    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
        details = await _board(request).task(task_id)
    return render(
        request, "confirm.html", task=details.record, action=action, applies_to=ACTIONS[action]
    )


async def act(request: Request) -> Response:
    """Do the confirmed action, then show the result."""
    _writable(request)
    action = _action(request)
    form = await _form(request)
    task_id = _task_id(form.get("id"))
    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
        await _board(request).act(action, task_id)
    log.info("task action", action=action)  # not the task id: it is the application's data
    if action == "delete":
        return RedirectResponse(path_for(request, "tasks", deleted=task_id), 303)
    return RedirectResponse(path_for(request, "task", id=task_id, done=action), 303)


def _action(request: Request) -> str:
    action = str(request.path_params["action"])
    if action not in ACTIONS:
        raise WebError(404, "Not found", f"There is no action {action!r} on a task.")
    return action


async def confirm_retry_all(request: Request) -> Response:
    """How many FAILED tasks (of one type, or all) retry-all will send back, and the form."""
    _writable(request)
    task_type = _task_type(request.query_params.get("type"))
    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
        count = await _board(request).failed_of_type(task_type)
    return render(request, "confirm_all.html", task_type=task_type, count=count)


async def retry_all(request: Request) -> Response:
    _writable(request)
    form = await _form(request)
    task_type = _task_type(form.get("type"))
    async with asyncio.timeout(RETRY_ALL_TIMEOUT_SECONDS):
        count = await _board(request).retry_all(task_type)
    log.info("retried all failed", type=task_type, count=count)
    return RedirectResponse(path_for(request, "overview", retried=str(count)), 303)


def _task_type(text: str | None) -> int | None:
    """A task type from a form or query ('' or absent: every type)."""
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_TYPE:
        raise WebError(400, "Bad request", f"A task type is an integer in 1..{MAX_TYPE}.")
    return int(text)


def _writable(request: Request) -> None:
    settings: WebSettings = request.app.state.settings
    if settings.read_only:
        raise WebError(403, "Read-only", "This dashboard is read-only: it changes no task.")


async def _form(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token is checked; at most _MAX_FORM_BYTES."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise WebError(413, "Form too large", f"A form may be at most {_MAX_FORM_BYTES} bytes.")
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError):
        raise WebError(400, "Bad request", "The form could not be read.") from None
    if not csrf_ok(request, fields.get(CSRF_FIELD)):
        raise WebError(
            403,
            "Form refused",
            "The form's security token is missing or wrong (or it came from another site). "
            "Nothing was changed. Reload the page and try again.",
        )
    return fields


async def login_form(request: Request) -> Response:
    return render(
        request,
        "login.html",
        next=_safe_next(request.query_params.get("next")),
        failed=False,
        banner=None,
    )


async def login(request: Request) -> Response:
    settings: WebSettings = request.app.state.settings
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    if settings.auth != "token" or not same_secret(form.get("token", ""), settings.secret):
        await asyncio.sleep(_FAILED_LOGIN_PAUSE_SECONDS)  # a guess costs a second
        return render(request, "login.html", 401, next=next_path, failed=True, banner=None)
    response = RedirectResponse(next_path, 303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(settings.secret),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    await _form(request)
    response = RedirectResponse(path_for(request, "login"), 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site, never another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
