"""The binary layout of a stored record (mirrored by scripts/_lib.lua), and its conversions.

One hash value per task: a fixed header, then the reference id and the data as opaque bytes.
A packed value costs ~47 bytes more than the data, where a hash per task would cost a key,
nine fields and a hashtable as soon as data passed 64 bytes.
"""

from __future__ import annotations

import struct

from store.errors import StoreError
from store.lifecycle import Failure, Reason
from store.record import Record, State, from_micros

__all__ = ["decode_failure", "decode_record", "encode_reason", "encode_tail"]

# format, id, version, type, state, flags, failed_attempts, next_attempt_at_us, created_at_us,
# then the reference id's length + 1 (0 = none). Lua rewrites the first 43 bytes only.
_HEADER = struct.Struct(">BQQIBBIqqI")
_FORMAT = 1


def encode_tail(record: Record) -> bytes:
    """The part of a record no script changes: reference id and data."""
    if record.reference_id is None:
        return b"\x00\x00\x00\x00" + record.data
    reference = record.reference_id.encode("utf-8")
    return struct.pack(">I", len(reference) + 1) + reference + record.data


_STATE_OF = {state.value: state for state in State if state is not State.UNKNOWN}


def decode_record(task_id: bytes | str, packed: bytes) -> Record:
    """Rebuild a Record from a task id and its stored value."""
    name = task_id.decode("utf-8") if isinstance(task_id, bytes) else task_id
    if len(packed) < _HEADER.size or packed[0] != _FORMAT:
        raise StoreError(f"task {name!r}: the stored record is damaged or of an unknown format")
    (_, id_, version, task_type, state, _flags, failed, next_at, created, reference_size) = (
        _HEADER.unpack_from(packed)
    )
    data_start = _HEADER.size + max(reference_size - 1, 0)
    reference = packed[_HEADER.size : data_start].decode("utf-8") if reference_size else None
    return Record(
        task_id=name,
        type=task_type,
        data=packed[data_start:],
        reference_id=reference,
        state=_STATE_OF.get(state) or State(state),  # State() raises on an unknown value
        failed_attempts=failed,
        next_attempt_at=from_micros(next_at),
        created_at=from_micros(created),
        id=id_,
        version=version,
    )


# A task's last failure in the errors hash: when (µs), failed_attempts after it, the kind's
# length; then kind and message (UTF-8). The scripts write the first two; the worker the rest.
_FAILURE = struct.Struct(">qIH")
_KIND_SIZE = struct.Struct(">H")


def encode_reason(reason: Reason | None) -> bytes:
    """A failed attempt's reason as settle sends it (b'' for none)."""
    if reason is None:
        return b""
    kind = reason.kind.encode("utf-8", "backslashreplace")
    return _KIND_SIZE.pack(len(kind)) + kind + reason.message.encode("utf-8", "backslashreplace")


def decode_failure(packed: bytes) -> Failure:
    """Rebuild a Failure from its value in the errors hash."""
    at, attempts, kind_size = _FAILURE.unpack_from(packed)
    kind_end = _FAILURE.size + kind_size
    return Failure(
        kind=packed[_FAILURE.size : kind_end].decode("utf-8", "backslashreplace"),
        message=packed[kind_end:].decode("utf-8", "backslashreplace"),
        at=from_micros(at),
        failed_attempts=attempts,
    )
