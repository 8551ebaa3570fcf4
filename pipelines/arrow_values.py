"""Arrow columns as Python lists, the fast way where one exists.

Encoders (Avro, Kafka keys, Feast's value protos, SQLite parameters) take Python objects. Arrow's ``to_pylist``
builds a scalar per value and is the slow road: through NumPy the same list costs a fraction (measured on this
machine, 200,000 values: strings 54 -> 5 ms, binary 135 -> 21 ms, int64 28 -> 2 ms).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def python_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """``column`` as Python scalars: nulls as None, except floats, whose nulls come out as NaN (the encoders
    treat both as null). Integers with nulls keep ``to_pylist`` (NumPy would turn them into floats)."""
    kind = column.type
    through_numpy = (
        pa.types.is_floating(kind)
        or (pa.types.is_integer(kind) and column.null_count == 0)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )
    values: list[Any] = column.to_numpy(zero_copy_only=False).tolist() if through_numpy else column.to_pylist()
    return values
