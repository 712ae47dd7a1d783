"""Example handlers: a logging handler (type 1) and an HTTP webhook (type 2).

Copy one to start your own: a handler is any function taking the Record, registered with
`@handler(type=N)`. Return -> CONFIRMED; raise -> retried with backoff; `Permanent` -> FAILED at
once; `RetryLater(seconds)` -> again later without counting a failure.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import structlog

from store import Record
from worker import Permanent, RetryLater, handler

__all__ = ["LOG", "WEBHOOK", "log_task", "post_webhook"]

LOG = 1
WEBHOOK = 2
WEBHOOK_TIMEOUT_SECONDS = 10.0

log = structlog.get_logger("retryd.handlers")


@handler(type=LOG)
async def log_task(record: Record) -> None:
    """Log the task and its data (decoded as UTF-8 where it can be): a first handler to try."""
    log.info(
        "task received",
        task_id=record.task_id,
        reference_id=record.reference_id,
        data=record.data.decode("utf-8", "backslashreplace"),
    )


@handler(type=WEBHOOK, timeout=WEBHOOK_TIMEOUT_SECONDS + 5)
def post_webhook(record: Record) -> None:
    """POST data['body'] as JSON to data['url'].

    data is a JSON object {"url": "https://...", "body": {...}}. A 2xx confirms; 429 and 503
    with Retry-After wait as told; other 4xx fail at once (retrying cannot fix a bad request);
    5xx and network errors retry with backoff. A plain function: it runs in the thread pool.
    """
    try:
        spec = json.loads(record.data)
        url, body = spec["url"], spec.get("body")
    except (ValueError, KeyError, TypeError) as error:
        raise Permanent(f"data is not a webhook spec: {error}") from error
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Permanent("data['url'] must be an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": record.task_id},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):  # noqa: S310
            return
    except urllib.error.HTTPError as error:
        retry_after = error.headers.get("Retry-After", "")
        if error.code in (429, 503) and retry_after.isdigit():
            raise RetryLater(float(retry_after), f"HTTP {error.code}") from error
        if 400 <= error.code < 500 and error.code != 429:
            raise Permanent(f"HTTP {error.code} from the webhook") from error
        raise
