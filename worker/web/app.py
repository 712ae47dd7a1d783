"""The dashboard's ASGI application: routes, the guard every request passes, error pages.

The guard bounds each request (URL and body size), checks who is asking (worker/web/security.py),
hands out the CSRF cookie and adds the security headers. A store that cannot be reached gives a
503 page with a banner; a bad request a page that says what was wrong, with its status. No page
ever shows a traceback or anything of the Redis URL but its redacted form.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from store import (
    NotFoundError,
    StaleVersionError,
    StateError,
    StoreError,
    StoreUnavailable,
    ValidationError,
)
from worker.background import in_background
from worker.config import WebSettings
from worker.logs import error_kind
from worker.web import views
from worker.web.board import Board
from worker.web.render import environment
from worker.web.security import (
    CSRF_COOKIE,
    check_exposure,
    is_authenticated,
    new_csrf_token,
)

__all__ = ["MAX_BODY_BYTES", "MAX_QUERY_BYTES", "create_app"]

log = structlog.get_logger("retryd.web")

STATIC = Path(__file__).with_name("static")
MAX_QUERY_BYTES = 4096  # a task id is at most 1 KiB of UTF-8, 3 KiB percent-encoded
MAX_BODY_BYTES = 8192  # every form holds a task id, a type and a token
SAMPLE_SECONDS = 10.0
# Reachable without signing in: the sign-in form, its stylesheet and script, the liveness probe.
_OPEN_PATHS = ("/login", "/static/", "/healthz")
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
# Whatever a store call fails with when Redis is away, slow or refusing us.
UNAVAILABLE = (StoreUnavailable, OSError, TimeoutError)


def create_app(settings: WebSettings, board: Board, *, redis_label: str) -> Starlette:
    """The dashboard for board's namespace; redis_label names the Redis on pages (redacted)."""
    check_exposure(settings)
    app = Starlette(
        lifespan=_sampling(board),
        routes=_routes(),
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=_guard)],
        exception_handlers=_error_pages(),
    )
    app.state.settings = settings
    app.state.board = board
    app.state.redis_label = redis_label
    app.state.templates = environment()
    return app


def _sampling(board: Board) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Read the workers' heartbeats every SAMPLE_SECONDS while serving, so the throughput chart
    has no gaps when nobody is looking; a failed read is skipped (the pages show the outage)."""

    async def sample() -> None:
        while True:
            with contextlib.suppress(*UNAVAILABLE, StoreError):
                await board.sample_workers()
            await asyncio.sleep(SAMPLE_SECONDS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with in_background(sample()):
            yield

    return lifespan


def _routes() -> list[Route | Mount]:
    return [
        Route("/", views.overview, name="overview"),
        Route("/healthz", views.healthz, name="healthz"),
        Route("/tasks", views.tasks, name="tasks"),
        Route("/task", views.task, name="task"),
        Route("/task/{action}", views.confirm_action, name="confirm_action", methods=["GET"]),
        Route("/task/{action}", views.act, methods=["POST"]),
        Route("/retry-failed", views.confirm_retry_all, name="retry_all", methods=["GET"]),
        Route("/retry-failed", views.retry_all, methods=["POST"]),
        Route("/login", views.login_form, name="login", methods=["GET"]),
        Route("/login", views.login, methods=["POST"]),
        Route("/logout", views.logout, name="logout", methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def _error_pages() -> dict[Any, Callable[[Request, Any], Awaitable[Response]]]:
    async def not_found(request: Request, error: Exception) -> Response:
        return views.error_page(request, 404, "Not found", str(error))

    async def invalid(request: Request, error: Exception) -> Response:
        return views.error_page(request, 400, "Bad request", str(error))

    async def conflict(request: Request, error: Exception) -> Response:
        return views.error_page(request, 409, "Not done", str(error))

    async def unavailable(request: Request, error: Exception) -> Response:
        log.warning("store unavailable", path=request.url.path, error=error_kind(error))
        return views.unavailable_page(request, error)

    async def store_error(request: Request, error: Exception) -> Response:
        log.error("store error", path=request.url.path, error=str(error))
        return views.error_page(request, 500, "The store refused", str(error))

    async def bug(request: Request, error: Exception) -> Response:
        log.error("page failed", path=request.url.path, error=f"{type(error).__name__}: {error}")
        return views.error_page(request, 500, "Something went wrong", "The error is logged.")

    return {
        500: bug,
        NotFoundError: not_found,
        ValidationError: invalid,
        StateError: conflict,
        StaleVersionError: conflict,
        views.WebError: views.web_error_page,
        StoreError: store_error,
        **dict.fromkeys(UNAVAILABLE, unavailable),
    }


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await _checked(request, call_next)
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE,
            request.state.csrf_token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    took_ms = (time.perf_counter() - started) * 1000
    # The browser's devtools show it; bench/web_bench.py reads it at 1M tasks.
    response.headers["server-timing"] = f"app;dur={took_ms:.1f}"
    # The path only: a query may hold a task id, which is the application's data.
    log.info(
        "request",
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        ms=round(took_ms, 1),
    )
    return response


async def _checked(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    request.state.csrf_token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    settings: WebSettings = request.app.state.settings
    if len(request.scope.get("query_string", b"")) > MAX_QUERY_BYTES:
        return views.error_page(
            request, 414, "Query too long", f"A query may be at most {MAX_QUERY_BYTES} bytes."
        )
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return views.error_page(
            request, 413, "Form too large", f"A form may be at most {MAX_BODY_BYTES} bytes."
        )
    path = request.url.path
    if is_authenticated(request, settings) or path.startswith(_OPEN_PATHS):
        return await call_next(request)
    if settings.auth == "basic":
        response = views.error_page(request, 401, "Sign in", "This dashboard needs a password.")
        response.headers["www-authenticate"] = 'Basic realm="retryd", charset="UTF-8"'
        return response
    if request.method == "GET":
        return RedirectResponse(views.path_for(request, "login", next=path), 303)
    return views.error_page(request, 401, "Sign in", "This dashboard needs its token.")
