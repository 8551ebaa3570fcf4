"""The state bucket's stored value: a history survives encode -> decode exactly, and foreign bytes are refused."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.transforms.history_codec import (
    BUCKETS_KEY,
    FORMAT_KEY,
    PLACES_KEY,
    HistoryFormatError,
    decode_history,
    encode_history,
)
from pipelines.transforms.windows import EntityFeatureSet, EntityHistory

BUCKETS = 64


def _card_history(keys: list[str], merchants: list[str | None]) -> EntityHistory:
    size = len(keys)
    return EntityHistory.from_values(
        keys=keys,
        times_ms=np.arange(size, dtype=np.int64) * 1_000 + 1_700_000_000_000,
        numeric={"amount": np.linspace(0.01, 99.99, size)},
        categories={"merchant_id": merchants},
    )


def _assert_same(decoded: EntityHistory, original: EntityHistory, features: EntityFeatureSet) -> None:
    assert decoded.keys.values().tolist() == original.keys.values().tolist()
    assert decoded.times_ms.dtype == np.int64
    np.testing.assert_array_equal(decoded.times_ms, original.times_ms)
    for column in features.numeric_columns:
        assert decoded.numeric[column].dtype == np.float64
        np.testing.assert_array_equal(decoded.numeric[column], original.numeric[column])  # bit-exact
    for column in features.category_columns:
        assert decoded.categories[column].values().tolist() == original.categories[column].values().tolist()


def test_card_history_round_trips_exactly() -> None:
    history = _card_history(["card-1", "card-1", "card-2", "card-3"], ["mrc-9", "mrc-9", "mrc-1", "mrc-9"])
    _assert_same(
        decode_history(encode_history(history, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS),
        history,
        CARD_FEATURES,
    )


def test_empty_history_round_trips() -> None:
    for features in (CARD_FEATURES, MERCHANT_FEATURES):
        empty = EntityHistory.empty(features)
        decoded = decode_history(encode_history(empty, state_buckets=BUCKETS), features, state_buckets=BUCKETS)
        assert len(decoded) == 0
        _assert_same(decoded, empty, features)


def test_any_string_survives_including_separators_unicode_and_nulls() -> None:
    awkward = ["a\x1fb", "", "ünïcødé 🃏", "a,b;c"]
    history = _card_history(awkward, [awkward[3], None, awkward[0], awkward[2]])
    _assert_same(
        decode_history(encode_history(history, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS),
        history,
        CARD_FEATURES,
    )


def test_repeated_strings_are_stored_once() -> None:
    """The point of the format: a held event costs its codes, not its strings again."""
    size = 10_000
    history = _card_history(["card-0000001"] * size, ["mrc-000001", "mrc-000002"] * (size // 2))
    per_event = len(encode_history(history, state_buckets=BUCKETS)) / size
    assert per_event < 8 + 8 + 4 + 4 + 1  # time, amount, two int32 codes, a little framing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["m1", "m2", "m3"]), st.integers(0, 10**13), st.floats(allow_nan=False)),
        max_size=40,
    )
)
def test_merchant_history_round_trips(rows: list[tuple[str, int, float]]) -> None:
    rows = sorted(rows, key=lambda row: (row[0], row[1]))  # a history holds each entity's events together
    history = EntityHistory.from_values(
        keys=[r[0] for r in rows],
        times_ms=np.array([r[1] for r in rows], dtype=np.int64),
        numeric={"amount": np.array([r[2] for r in rows], dtype=np.float64)},
        categories={},
    )
    _assert_same(
        decode_history(encode_history(history, state_buckets=BUCKETS), MERCHANT_FEATURES, state_buckets=BUCKETS),
        history,
        MERCHANT_FEATURES,
    )


def test_history_not_holding_each_entitys_events_together_is_refused() -> None:
    """The merge relies on it: an entity split in two would have its windows cut at the split."""
    scattered = _card_history(["card-1", "card-2", "card-1"], ["mrc-1", "mrc-1", "mrc-1"])
    with pytest.raises(HistoryFormatError, match="together"):
        decode_history(encode_history(scattered, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS)


def test_value_of_the_old_format_is_refused_clearly() -> None:
    with pytest.raises(HistoryFormatError, match="new checkpoint"):
        decode_history(b"card-1\x1fcard-2", CARD_FEATURES, state_buckets=BUCKETS)


def test_stream_without_the_format_marker_is_refused() -> None:
    batch = pa.RecordBatch.from_pydict({"x": [1]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    with pytest.raises(HistoryFormatError, match="format None"):
        decode_history(bytes(sink.getvalue()), CARD_FEATURES, state_buckets=BUCKETS)


def test_history_lacking_a_column_the_features_read_is_refused() -> None:
    merchant_only = EntityHistory.from_values(
        keys=["m1"],
        times_ms=np.array([1], dtype=np.int64),
        numeric={"amount": np.array([1.0])},
        categories={},
    )
    with pytest.raises(HistoryFormatError, match="merchant_id"):
        decode_history(encode_history(merchant_only, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS)


def test_format_marker_is_written() -> None:
    stream = pa.ipc.open_stream(pa.py_buffer(encode_history(EntityHistory.empty(CARD_FEATURES), state_buckets=BUCKETS)))
    assert FORMAT_KEY in (stream.schema.metadata or {})


def test_state_written_with_another_bucket_count_is_refused_with_both_counts() -> None:
    history = _card_history(["card-1"], ["mrc-1"])
    with pytest.raises(HistoryFormatError, match=r"state_buckets=64, the job now has 16.*back to 64"):
        decode_history(encode_history(history, state_buckets=64), CARD_FEATURES, state_buckets=16)


def test_value_written_without_compression_reads_back_the_same() -> None:
    """Checkpoints written before the buffers were compressed keep working."""
    history = _card_history(["card-1", "card-1", "card-2"], ["mrc-1", None, "mrc-2"])
    table = pa.ipc.open_stream(pa.py_buffer(encode_history(history, state_buckets=BUCKETS))).read_all()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    _assert_same(decode_history(bytes(sink.getvalue()), CARD_FEATURES, state_buckets=BUCKETS), history, CARD_FEATURES)


def test_stored_buffers_are_compressed() -> None:
    """Fewer bytes for the JVM to pickle each batch: time steps, amounts in cents and repeated codes shrink."""
    size = 10_000
    history = _card_history([f"card-{i // 10:05d}" for i in range(size)], [f"mrc-{i % 7}" for i in range(size)])
    history.numeric["amount"] = np.round(np.linspace(1, 50, size), 2)
    per_event = len(encode_history(history, state_buckets=BUCKETS)) / size
    assert per_event < 2  # 24 bytes a held event as plain buffers; 2.83 in format 2 (absolute times, float64)


def _stored_schema(history: EntityHistory) -> pa.Schema:
    return pa.ipc.open_stream(pa.py_buffer(encode_history(history, state_buckets=BUCKETS))).schema


def test_amounts_in_cents_are_stored_as_exact_integers() -> None:
    history = _card_history(["card-1"] * 4, ["m"] * 4)
    history.numeric["amount"] = np.array([0.29, 12.5, 49_999.99, 0.0])  # 0.29 * 100 is 28.999999999999996
    field = _stored_schema(history).field("num:amount")
    assert field.type == pa.int64()
    assert field.metadata == {PLACES_KEY: b"2"}
    _assert_same(
        decode_history(encode_history(history, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS),
        history,
        CARD_FEATURES,
    )


@pytest.mark.parametrize(
    "amounts",
    [
        [1.0, 0.123456],  # more places than are tried
        [1.25] * 100 + [0.123456],  # two places hold for the first values, not for a later one
        [1.25] * 100 + [1e308],  # a later value too large to scale
        [1.0, float("nan")],
        [1.0, -0.0],  # an integer has no sign of zero
        [1.0, float("inf")],
        [1.0, 2.0**60],  # beyond the integers a float64 holds exactly
        [1.0, 1 / 3],
    ],
)
def test_other_numbers_stay_floats_and_come_back_bit_for_bit(amounts: list[float]) -> None:
    history = _card_history(["card-1"] * len(amounts), ["m"] * len(amounts))
    history.numeric["amount"] = np.array(amounts)
    field = _stored_schema(history).field("num:amount")
    assert field.type == pa.float64()
    assert not field.metadata
    decoded = decode_history(encode_history(history, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS)
    assert decoded.numeric["amount"].tobytes() == history.numeric["amount"].tobytes()  # NaN and -0.0 included


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "c3", "c4"]),
            st.integers(0, 10**13),
            st.tuples(st.integers(-(10**12), 10**12), st.integers(0, 6)),  # an amount: integer / 10 ** places
        ),
        max_size=40,
    )
)
def test_decimal_amounts_and_times_of_many_entities_round_trip(
    rows: list[tuple[str, int, tuple[int, int]]],
) -> None:
    rows = sorted(rows, key=lambda row: (row[0], row[1]))
    history = EntityHistory.from_values(
        keys=[r[0] for r in rows],
        times_ms=np.array([r[1] for r in rows], dtype=np.int64),
        numeric={"amount": np.array([r[2][0] / 10 ** r[2][1] for r in rows], dtype=np.float64)},
        categories={},
    )
    decoded = decode_history(encode_history(history, state_buckets=BUCKETS), MERCHANT_FEATURES, state_buckets=BUCKETS)
    _assert_same(decoded, history, MERCHANT_FEATURES)
    assert decoded.numeric["amount"].tobytes() == history.numeric["amount"].tobytes()


def test_state_written_in_format_2_is_still_read() -> None:
    """A checkpoint written before format 3 keeps its state: absolute times, float64 numbers, int32 codes."""
    keys = pa.DictionaryArray.from_arrays(pa.array([0, 0, 1], type=pa.int32()), pa.array(["card-1", "card-2"]))
    merchants = pa.DictionaryArray.from_arrays(pa.array([1, None, 0], type=pa.int32()), pa.array(["m1", "m2"]))
    batch = pa.RecordBatch.from_pydict(
        {
            "entity_id": keys,
            "event_time_ms": pa.array([1_000, 3_000, 2_000], type=pa.int64()),
            "num:amount": pa.array([1.5, 0.1 + 0.2, 7.0]),
            "cat:merchant_id": merchants,
        },
        metadata={FORMAT_KEY: b"2", BUCKETS_KEY: str(BUCKETS).encode()},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    decoded = decode_history(bytes(sink.getvalue()), CARD_FEATURES, state_buckets=BUCKETS)
    expected = EntityHistory.from_values(
        keys=["card-1", "card-1", "card-2"],
        times_ms=np.array([1_000, 3_000, 2_000]),
        numeric={"amount": np.array([1.5, 0.1 + 0.2, 7.0])},
        categories={"merchant_id": ["m2", None, "m1"]},
    )
    _assert_same(decoded, expected, CARD_FEATURES)


def test_format_2_state_out_of_time_order_is_refused() -> None:
    keys = pa.DictionaryArray.from_arrays(pa.array([0, 0], type=pa.int32()), pa.array(["m1"]))
    batch = pa.RecordBatch.from_pydict(
        {"entity_id": keys, "event_time_ms": pa.array([2_000, 1_000], type=pa.int64()), "num:amount": [1.0, 2.0]},
        metadata={FORMAT_KEY: b"2", BUCKETS_KEY: str(BUCKETS).encode()},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    with pytest.raises(HistoryFormatError, match="time order"):
        decode_history(bytes(sink.getvalue()), MERCHANT_FEATURES, state_buckets=BUCKETS)


def test_history_out_of_time_order_within_an_entity_is_refused() -> None:
    history = EntityHistory.from_values(
        keys=["card-1", "card-1"],
        times_ms=np.array([2_000, 1_000], dtype=np.int64),
        numeric={"amount": np.array([1.0, 2.0])},
        categories={"merchant_id": ["m", "n"]},
    )
    with pytest.raises(HistoryFormatError, match="time order"):
        decode_history(encode_history(history, state_buckets=BUCKETS), CARD_FEATURES, state_buckets=BUCKETS)


def test_stored_column_that_is_not_dictionary_encoded_is_refused() -> None:
    batch = pa.RecordBatch.from_pydict(
        {"entity_id": ["card-1"], "event_time_ms": [1], "num:amount": [1.0], "cat:merchant_id": ["m"]},
        metadata={FORMAT_KEY: b"2", b"featurestream.state_buckets": str(BUCKETS).encode()},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    with pytest.raises(HistoryFormatError, match="column"):
        decode_history(bytes(sink.getvalue()), CARD_FEATURES, state_buckets=BUCKETS)
