"""The log scrubber: a password from the Redis URL never reaches a log line, in any spelling."""

from __future__ import annotations

from worker.logs import SecretScrubber, secrets_of_url


def test_a_percent_encoded_password_is_masked_as_redis_py_would_show_it() -> None:
    """redis-py decodes p%40ss to p@ss before it can appear in an error: mask both."""
    scrubber = SecretScrubber(secrets_of_url("redis://app:p%40ss@127.0.0.1:6379/0"))
    event = scrubber(
        None, "warning", {"event": "store unavailable", "error": "AuthError: app:p@ss p%40ss"}
    )
    assert "p@ss" not in event["error"]
    assert "p%40ss" not in event["error"]


def test_exceptions_in_an_event_are_rendered_and_masked() -> None:
    scrubber = SecretScrubber(secrets_of_url("redis://:hunter2@127.0.0.1/0"))
    event = scrubber(None, "error", {"event": "x", "error": ConnectionError("auth hunter2")})
    assert event["error"] == "ConnectionError: auth ***"


def test_a_url_without_a_password_has_no_secrets() -> None:
    assert secrets_of_url("redis://127.0.0.1:6379/0") == []
