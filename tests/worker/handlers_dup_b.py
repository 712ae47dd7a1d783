"""Registers type 5 again; with handlers_dup_a in [handlers] modules, start-up must fail."""

from store import Record
from worker import handler


@handler(type=5)
async def second_five(record: Record) -> None: ...
