"""Feast's online-store byte formats, produced without building a protobuf object per value.

Feast's SQLite store keeps one row per (entity, feature): the entity key serialized by
``feast.infra.key_encoding_utils.serialize_entity_key`` (version 3), the value as a serialized
``feast.types.Value`` protobuf, and the event time as integer seconds. Building a ``ValueProto`` per value costs
about as much as the whole SQLite insert, so the few scalar types we write are encoded by hand here; the unit
tests compare every encoder with Feast's own serializers, byte for byte.

This module imports neither Feast nor protobuf, so Spark executors that only write pay for neither.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

# feast.value_type.ValueType numbers used in serialized entity keys.
_VALUE_TYPE_STRING = 2
_VALUE_TYPE_INT32 = 3
_VALUE_TYPE_INT64 = 4

# Protobuf tags of feast.types.Value's oneof fields: (field number << 3) | wire type.
_TAG_STRING = 0x12  # string_val = 2, length-delimited
_TAG_INT32 = 0x18  # int32_val = 3, varint
_TAG_INT64 = 0x20  # int64_val = 4, varint
_TAG_DOUBLE = 0x29  # double_val = 5, 64-bit
_TAG_FLOAT = 0x35  # float_val = 6, 32-bit
_TAG_BOOL = 0x38  # bool_val = 7, varint

_DOUBLE = struct.Struct("<Bd")
_FLOAT = struct.Struct("<Bf")
_UINT32 = struct.Struct("<I")
_INT32_RANGE = (-(2**31), 2**31 - 1)
_INT64_RANGE = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1)

NULL_VALUE = b""
"""An empty ``Value`` message: what Feast stores for a null (or NaN) feature value and reads back as None."""


def _varint(value: int) -> bytes:
    value &= 0xFFFF_FFFF_FFFF_FFFF  # negative ints are sign-extended to 64 bits, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_INT64 = [bytes((_TAG_INT64,)) + _varint(n) for n in range(4096)]


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _checked(value: int, bounds: tuple[int, int], dtype: str) -> int:
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{value} does not fit a {dtype} feature")
    return value


def _encode_doubles(values: Sequence[Any]) -> list[bytes]:
    pack = _DOUBLE.pack
    return [NULL_VALUE if v is None or v != v else pack(_TAG_DOUBLE, v) for v in values]


def _encode_floats(values: Sequence[Any]) -> list[bytes]:
    pack = _FLOAT.pack
    return [NULL_VALUE if v is None or v != v else pack(_TAG_FLOAT, v) for v in values]


def _encode_int64s(values: Sequence[Any]) -> list[bytes]:
    small, tag = _SMALL_INT64, bytes((_TAG_INT64,))
    return [
        NULL_VALUE if v is None else small[v] if 0 <= v < 4096 else tag + _varint(_checked(v, _INT64_RANGE, "Int64"))
        for v in values
    ]


def _encode_int32s(values: Sequence[Any]) -> list[bytes]:
    tag = bytes((_TAG_INT32,))
    return [NULL_VALUE if v is None else tag + _varint(_checked(v, _INT32_RANGE, "Int32")) for v in values]


def _encode_bools(values: Sequence[Any]) -> list[bytes]:
    true, false = bytes((_TAG_BOOL, 1)), bytes((_TAG_BOOL, 0))
    return [NULL_VALUE if v is None else true if v else false for v in values]


def _encode_strings(values: Sequence[Any]) -> list[bytes]:
    out = []
    for v in values:
        if v is None:
            out.append(NULL_VALUE)
        else:
            data = v.encode("utf-8")
            out.append(bytes((_TAG_STRING,)) + _varint(len(data)) + data)
    return out


VALUE_ENCODERS: dict[str, Callable[[Sequence[Any]], list[bytes]]] = {
    "Float64": _encode_doubles,
    "Float32": _encode_floats,
    "Int64": _encode_int64s,
    "Int32": _encode_int32s,
    "Bool": _encode_bools,
    "String": _encode_strings,
}
"""Encoders by Feast type name (``str(feast.types.Float64)``); a null or NaN becomes :data:`NULL_VALUE`."""


def encode_values(dtype: str, values: Sequence[Any]) -> list[bytes]:
    """Serialized ``feast.types.Value`` messages for Python scalars of one Feast type."""
    return VALUE_ENCODERS[dtype](values)


def _key_prefix(join_key: str) -> bytes:
    name = join_key.encode("utf-8")
    return _UINT32.pack(1) + _UINT32.pack(_VALUE_TYPE_STRING) + _UINT32.pack(len(name)) + name


def encode_entity_keys(join_key: str, key_type: str, values: Sequence[Any]) -> list[bytes]:
    """Entity keys as ``serialize_entity_key(..., entity_key_serialization_version=3)`` writes them (one join key)."""
    prefix = _key_prefix(join_key)
    pack = _UINT32.pack
    if key_type == "String":
        out = []
        for value in values:
            data = value.encode("utf-8")
            out.append(prefix + pack(_VALUE_TYPE_STRING) + pack(len(data)) + data)
        return out
    if key_type == "Int64":
        head = prefix + pack(_VALUE_TYPE_INT64) + pack(8)
        return [head + struct.pack("<q", value) for value in values]
    if key_type == "Int32":
        head = prefix + pack(_VALUE_TYPE_INT32) + pack(4)
        return [head + struct.pack("<i", value) for value in values]
    raise ValueError(f"entity keys of type {key_type} are not supported")


ENTITY_KEY_TYPES = frozenset({"String", "Int64", "Int32"})


def _local_time_is_utc() -> bool:
    return time.timezone == 0 and (not time.daylight or time.altzone == 0)


def truncated_seconds(epoch_us: np.ndarray) -> np.ndarray:
    """Whole seconds of epoch microseconds, truncated toward zero as ``int(datetime.timestamp())`` does."""
    epoch_us = epoch_us.astype(np.int64, copy=False)
    return np.sign(epoch_us) * (np.abs(epoch_us) // 1_000_000)


def feast_event_seconds(epoch_us: np.ndarray) -> np.ndarray:
    """The integer Feast's SQLite store writes into ``event_ts`` for each event time (UTC epoch microseconds).

    Feast stores ``int(naive_utc_datetime.timestamp())``, which Python computes in the *local* time zone, and
    reads it back with ``datetime.fromtimestamp`` (local again): the pair round-trips on any machine, but the
    stored integer is the epoch only where local time is UTC. We must store the same integer, so off UTC this
    falls back to Feast's own per-row arithmetic.
    """
    if _local_time_is_utc():
        return truncated_seconds(epoch_us)
    return np.array(
        [int((_EPOCH + timedelta(microseconds=int(us))).timestamp()) for us in epoch_us],
        dtype=np.int64,
    )
