"""Arrow columns to Python lists: the NumPy road must give what ``to_pylist`` gives, nulls included."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from pipelines.arrow_values import python_values


@pytest.mark.parametrize(
    "array",
    [
        pa.array(["card-1", None, "", "carte-é"], pa.string()),
        pa.array(["a", None], pa.large_string()),
        pa.array([b"\xc3\x01\x00", None, b""], pa.binary()),
        pa.array([1, 2**62, -3], pa.int64()),
        pa.array([1, None, 3], pa.int64()),  # nulls: stays on to_pylist, ints stay ints
        pa.array([True, None, False], pa.bool_()),
    ],
)
def test_values_and_types_match_to_pylist(array: pa.Array) -> None:
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(1)])  # several chunks, as Spark hands them over
    for column in (array, chunked):
        values = python_values(column)
        assert values == column.to_pylist()
        assert [type(v) for v in values] == [type(v) for v in column.to_pylist()]


def test_float_nulls_come_out_as_nan() -> None:
    values = python_values(pa.chunked_array([pa.array([1.5, None], pa.float64())]))
    assert values[0] == 1.5 and isinstance(values[0], float)
    assert math.isnan(values[1])


def test_empty_column() -> None:
    assert python_values(pa.chunked_array([], pa.string())) == []
