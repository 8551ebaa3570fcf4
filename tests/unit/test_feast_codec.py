"""The hand-rolled encoders must produce exactly the bytes Feast's own serializers produce."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.utils import to_naive_utc
from feast.value_type import ValueType
from hypothesis import given
from hypothesis import strategies as st

from pipelines.feast_io.codec import NULL_VALUE, encode_entity_keys, encode_values, feast_event_seconds

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def feast_bytes(values: list[object], value_type: ValueType) -> list[bytes]:
    return [proto.SerializeToString() for proto in python_values_to_proto_values(values, value_type)]


@given(st.lists(st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, math.inf, -math.inf, 5e-324])))
def test_doubles_match_feast(values: list[float]) -> None:
    assert encode_values("Float64", values) == [Value(double_val=v).SerializeToString() for v in values]


@given(st.lists(st.floats(width=32, allow_nan=False)))
def test_floats_match_feast(values: list[float]) -> None:
    assert encode_values("Float32", values) == [Value(float_val=v).SerializeToString() for v in values]


@given(st.lists(INT64 | st.integers(min_value=0, max_value=5000)))
def test_int64s_match_feast(values: list[int]) -> None:
    assert encode_values("Int64", values) == [Value(int64_val=v).SerializeToString() for v in values]


@given(st.lists(INT32))
def test_int32s_match_feast(values: list[int]) -> None:
    assert encode_values("Int32", values) == [Value(int32_val=v).SerializeToString() for v in values]


@given(st.lists(st.booleans()))
def test_bools_match_feast(values: list[bool]) -> None:
    assert encode_values("Bool", values) == [Value(bool_val=v).SerializeToString() for v in values]


@given(st.lists(st.text()))
def test_strings_match_feast(values: list[str]) -> None:
    assert encode_values("String", values) == [Value(string_val=v).SerializeToString() for v in values]


def test_nulls_and_nan_are_feasts_empty_value() -> None:
    assert encode_values("Float64", [None, math.nan]) == feast_bytes([None, math.nan], ValueType.DOUBLE)
    assert encode_values("Int64", [None]) == feast_bytes([None], ValueType.INT64) == [NULL_VALUE]


def test_out_of_range_integers_are_rejected() -> None:
    with pytest.raises(ValueError, match="Int32"):
        encode_values("Int32", [2**31])
    with pytest.raises(ValueError, match="Int64"):
        encode_values("Int64", [2**63])


@given(st.lists(st.text(), min_size=1), st.sampled_from(["card_id", "merchant_id", "ключ"]))
def test_string_entity_keys_match_feast(values: list[str], join_key: str) -> None:
    expected = [
        serialize_entity_key(EntityKey(join_keys=[join_key], entity_values=[Value(string_val=v)]), 3) for v in values
    ]
    assert encode_entity_keys(join_key, "String", values) == expected


@given(st.lists(INT64, min_size=1))
def test_int64_entity_keys_match_feast(values: list[int]) -> None:
    expected = [
        serialize_entity_key(EntityKey(join_keys=["id"], entity_values=[Value(int64_val=v)]), 3) for v in values
    ]
    assert encode_entity_keys("id", "Int64", values) == expected


def feast_stored_seconds(us: int) -> int:
    """What Feast's SQLite store puts in event_ts: its adapter's int(naive_utc.timestamp())."""
    return int(to_naive_utc(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).timestamp())


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_event_seconds_match_feast_in_any_local_zone(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        micros = np.array([0, 1, 999_999, 1_767_225_601_500_000, 1_751_328_000_000_001], dtype=np.int64)
        assert feast_event_seconds(micros).tolist() == [feast_stored_seconds(int(us)) for us in micros]
    finally:
        monkeypatch.undo()
        time.tzset()
