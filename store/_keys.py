"""Every Redis key and channel name a namespace uses, in one place.

All of them carry the namespace as a hash tag ('{retryd}:...'), so a namespace lives in one hash
slot and every script runs unchanged on Redis Cluster. Task ids never appear in key names (they
are hash fields and sorted-set members), so any task id is safe: colons, braces, spaces, unicode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from store.errors import ValidationError
from store.record import State

__all__ = ["Keys"]

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


@dataclass(frozen=True, slots=True)
class Keys:
    """The key schema of one namespace (see docs/store.md for what each holds)."""

    namespace: str
    tasks: str
    sequence: str
    types: str
    index_prefix: str
    damaged: str
    list_prefix: str
    errors: str
    wake_channel: str
    presence: str
    presence_payloads: str
    rates: str

    @classmethod
    def for_namespace(cls, namespace: str) -> Keys:
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValidationError(
                "namespace",
                f"must be 1-128 characters of letters, digits and _.:- , got {namespace!r}",
            )
        tag = "{" + namespace + "}"
        return cls(
            namespace=namespace,
            tasks=f"{tag}:tasks",
            sequence=f"{tag}:seq",
            types=f"{tag}:types",
            index_prefix=f"{tag}:idx:",
            damaged=f"{tag}:idx:damaged",
            list_prefix=f"{tag}:list:",
            errors=f"{tag}:errors",
            wake_channel=f"{tag}:wake",
            presence=f"{tag}:presence",
            presence_payloads=f"{tag}:presence:payloads",
            rates=f"{tag}:rates",
        )

    def index(self, state: State, task_type: int) -> str:
        """The sorted set of one state's records of one type, scored by next_attempt_at."""
        return f"{self.index_prefix}{int(state)}:{task_type}"
