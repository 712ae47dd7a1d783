"""Who may use the dashboard and which forms it accepts: auth, CSRF, the bind-address rule.

auth = "basic": the browser's own login prompt (HTTP Basic, user and secret).
auth = "token": `Authorization: Bearer <secret>` for scripts, or the login form for people; the
form sets a session cookie holding an HMAC of the secret (never the secret itself).
Every POST carries a CSRF token that must equal the one in the visitor's cookie (a double-submit
cookie, SameSite=Strict); a cross-site page can neither read nor set that cookie.

This module must never log, echo or put in a response the secret or anything derived from it
but the session cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import socket

from starlette.requests import Request

from worker.config import WebSettings
from worker.errors import ConfigError

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "check_exposure",
    "csrf_ok",
    "is_authenticated",
    "new_csrf_token",
    "same_secret",
    "session_value",
]

CSRF_COOKIE = "retryd_csrf"
CSRF_FIELD = "csrf"
SESSION_COOKIE = "retryd_session"


def check_exposure(settings: WebSettings) -> None:
    """Refuse to serve every task's actions to a network without asking who is there."""
    if settings.auth == "none" and not _is_loopback(settings.host):
        raise ConfigError(
            f"web.host: {settings.host!r} is reachable from other machines, and web.auth is "
            "'none': set web.auth to 'basic' or 'token' with web.secret (RETRYD_WEB_SECRET), "
            "or bind to 127.0.0.1"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name: loopback only if every address it resolves to is
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def session_value(secret: str) -> str:
    """The session cookie's value: proves the secret was given without holding it."""
    return hmac.new(secret.encode(), b"retryd-web-session", hashlib.sha256).hexdigest()


def is_authenticated(request: Request, settings: WebSettings) -> bool:
    """Whether the request proves it knows the secret (always, with auth = "none")."""
    if settings.auth == "none":
        return True
    header = request.headers.get("authorization", "")
    if settings.auth == "basic":
        return _basic_ok(header, settings)
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return same_secret(token, settings.secret)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and same_secret(cookie, session_value(settings.secret))


def _basic_ok(header: str, settings: WebSettings) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, colon, password = decoded.partition(":")
    # Both compared whatever the first gives, so the time taken tells nothing.
    user_ok = same_secret(user, settings.user)
    return bool(colon) & user_ok & same_secret(password, settings.secret)


def same_secret(given: str, expected: str) -> bool:
    """Compare in constant time, so the time taken tells nothing of the secret."""
    return hmac.compare_digest(given.encode(), expected.encode())


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """The form's token equals the cookie's, and the request comes from this very site."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not same_secret(submitted, cookie):
        return False
    origin = request.headers.get("origin")
    # Browsers send Origin on every POST; when they do, it must name this host.
    return origin is None or origin.partition("://")[2] == request.headers.get("host")
