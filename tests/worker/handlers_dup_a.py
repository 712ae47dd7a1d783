"""Registers type 5; with handlers_dup_b in [handlers] modules, start-up must fail."""

from store import Record
from worker import handler


@handler(type=5)
async def first_five(record: Record) -> None: ...
