"""Both wire formats: round trips, evolution, typed decode errors, pickling, and a fuzzed decoder.

The Confluent path runs against confluent-kafka's own in-memory Schema Registry (``mock://`` URL): there is
no registry server on this machine, so what a real registry adds (HTTP, auth) is not exercised here.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import Settings
from pipelines.schemas.store import SCHEMAS_ROOT, SchemaStore, load_store
from pipelines.serde import ConfluentEncoder, DecodeError, RecordDecoder, SingleObjectEncoder, make_encoder
from pipelines.serde.confluent import ConfluentRegistry
from pipelines.serde.errors import EncodeError

TRANSACTION_V1: dict[str, Any] = {
    "event_id": "0f8e3a",
    "card_id": "card-0000042",
    "merchant_id": "mrc-000007",
    "amount": 12.5,
    "currency": "EUR",
    "mcc": "5411",
    "country": "DE",
    "channel": "POS",
    "event_time": 1_714_550_400_123,
}
TRANSACTION = {**TRANSACTION_V1, "device_id": "dev-0000042"}
LABEL = {"event_id": "0f8e3a", "card_id": "card-0000042", "is_fraud": True, "label_time": 1_714_650_400_000}
SCORE = {
    "event_id": "0f8e3a",
    "card_id": "card-0000042",
    "score": 0.93,
    "is_alert": True,
    "model_name": "fraud-xgb",
    "model_version": "3",
    "event_time": 1_714_550_400_123,
    "scored_at": 1_714_550_400_500,
    "features_as_of": 1_714_550_400_123,
}
DEAD_LETTER = {
    "reason": "decode:truncated",
    "error": "the body ends early",
    "source_topic": "transactions",
    "source_partition": 2,
    "source_offset": 12345,
    "source_timestamp": 1_714_550_400_200,
    "original_key": b"card-0000042",
    "original_value": b"\xc3\x01\x00",
    "failed_expectations": [],
    "dead_lettered_at": 1_714_550_401_000,
}
RECORDS = {"transactions": TRANSACTION, "labels": LABEL, "scores": SCORE, "dead_letter": DEAD_LETTER}


@pytest.fixture
def registry() -> ConfluentRegistry:
    return ConfluentRegistry("mock://featurestream-tests", client=SchemaRegistryClient.new_client({"url": "mock://x"}))


@pytest.mark.parametrize("subject", sorted(RECORDS))
def test_single_object_round_trip(subject: str) -> None:
    schema = load_store().latest(subject)
    value = SingleObjectEncoder(schema).encode(RECORDS[subject])
    assert value[:2] == b"\xc3\x01" and value[2:10] == schema.fingerprint
    assert RecordDecoder(subject).decode(value) == RECORDS[subject]


@pytest.mark.parametrize("subject", sorted(RECORDS))
def test_confluent_round_trip_with_the_in_memory_registry(subject: str, registry: ConfluentRegistry) -> None:
    encoder = ConfluentEncoder(load_store().latest(subject), f"topic-{subject}", registry)
    value = encoder.encode(RECORDS[subject])
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") >= 1
    assert RecordDecoder(subject, registry=registry).decode(value) == RECORDS[subject]


def test_confluent_bytes_interoperate_with_confluent_kafkas_own_serde(registry: ConfluentRegistry) -> None:
    schema = load_store().latest("transactions")
    context = SerializationContext("tx", MessageField.VALUE)
    theirs = AvroSerializer(registry.client, schema.json())(TRANSACTION, context)
    assert RecordDecoder("transactions", registry=registry).decode(theirs) == TRANSACTION
    ours = ConfluentEncoder(schema, "tx", registry).encode(TRANSACTION)
    decoded = AvroDeserializer(registry.client, schema.json())(ours, context)
    assert decoded["event_id"] == TRANSACTION["event_id"]
    assert int(decoded["event_time"].timestamp() * 1000) == TRANSACTION["event_time"]


def test_timestamps_are_epoch_millis_and_datetimes_are_accepted_on_write() -> None:
    from datetime import UTC, datetime

    moment = datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
    value = make_encoder("transactions", Settings(), "t").encode({**TRANSACTION, "event_time": moment})
    decoded = RecordDecoder("transactions").decode(value)
    assert decoded["event_time"] == 1_714_550_400_123 and isinstance(decoded["event_time"], int)


def test_make_encoder_follows_the_settings(registry: ConfluentRegistry) -> None:
    assert isinstance(make_encoder("labels", Settings(), "labels"), SingleObjectEncoder)
    with_registry = Settings(serde={"schema_registry_url": "mock://from-settings"})
    assert isinstance(make_encoder("labels", with_registry, "labels"), ConfluentEncoder)
    assert RecordDecoder.from_settings("labels", with_registry)._registry is not None


def test_v1_records_are_read_as_v2_with_the_default() -> None:
    v1 = SingleObjectEncoder(load_store().version("transactions", 1)).encode(TRANSACTION_V1)
    assert RecordDecoder("transactions").decode(v1) == {**TRANSACTION_V1, "device_id": None}


def test_a_record_of_the_readers_own_schema_is_read_without_comparing_two_schemas(
    registry: ConfluentRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fastavro compares writer and reader on every record: equal schemas must be one object (a deep comparison
    of two equal dicts cost ~1 µs of ~4 per record), while an older writer stays its own schema."""
    import pipelines.serde.codec as codec

    seen: list[bool] = []
    real_reader = codec.schemaless_reader

    def spy(stream: Any, writer: dict[str, Any], reader: dict[str, Any]) -> Any:
        seen.append(writer is reader)
        return real_reader(stream, writer, reader)

    monkeypatch.setattr(codec, "schemaless_reader", spy)
    store = load_store()
    decoder = RecordDecoder("transactions", registry=registry)
    current = make_encoder("transactions", Settings(), "transactions").encode(TRANSACTION)
    older = SingleObjectEncoder(store.version("transactions", 1)).encode(TRANSACTION_V1)
    framed = ConfluentEncoder(store.latest("transactions"), "transactions", registry).encode(TRANSACTION)
    assert decoder.decode(current) == TRANSACTION
    assert decoder.decode(older) == {**TRANSACTION_V1, "device_id": None}
    assert decoder.decode(framed) == decoder.decode(framed) == TRANSACTION
    assert seen == [True, False, True, True]


def test_v2_records_are_read_by_a_v1_reader() -> None:
    """FORWARD: a consumer pinned to v1 reads v2 data, without the field it does not know."""
    v2_value = SingleObjectEncoder(load_store().latest("transactions")).encode(TRANSACTION)
    assert RecordDecoder("transactions", reader_version=1).decode(v2_value) == TRANSACTION_V1


def test_a_reader_without_the_writer_schema_reports_it_unknown(tmp_path: Path) -> None:
    """Registry-less readers need the writer's schema file: schemas/ must be deployed before producers upgrade."""
    shutil.copytree(SCHEMAS_ROOT, tmp_path / "schemas")
    (tmp_path / "schemas" / "transactions" / "v2.avsc").unlink()
    v2_value = SingleObjectEncoder(load_store().latest("transactions")).encode(TRANSACTION)
    with pytest.raises(DecodeError) as unknown:
        RecordDecoder("transactions", store=SchemaStore(tmp_path / "schemas")).decode(v2_value)
    assert unknown.value.kind == "unknown_schema"


def test_v2_records_are_read_by_a_v1_reader_through_the_registry(registry: ConfluentRegistry) -> None:
    v2_value = ConfluentEncoder(load_store().latest("transactions"), "tx", registry).encode(TRANSACTION)
    assert RecordDecoder("transactions", registry=registry, reader_version=1).decode(v2_value) == TRANSACTION_V1


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b'{"event_id": 1}', "garbage"),
        (b"\xc3", "truncated"),
        (b"\xc3\x01\x01\x02", "truncated"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x02a", "unknown_schema"),
        (b"\x00\x00\x00\x00\x07\x02a", "unknown_schema"),  # Confluent framing, but no registry configured
        (b"\x00\x00\x01", "truncated"),
    ],
)
def test_undecodable_values_give_typed_errors(value: bytes | None, kind: str) -> None:
    with pytest.raises(DecodeError) as error:
        RecordDecoder("transactions").decode(value)
    assert error.value.kind == kind
    assert error.value.reason


def test_body_problems_are_classified() -> None:
    decoder = RecordDecoder("transactions")
    value = SingleObjectEncoder(load_store().latest("transactions")).encode(TRANSACTION)
    for cut, kind in ((len(value) - 1, "truncated"), (12, "truncated")):
        with pytest.raises(DecodeError) as error:
            decoder.decode(value[:cut])
        assert error.value.kind == kind
    with pytest.raises(DecodeError) as trailing:
        decoder.decode(value + b"\x00")
    assert trailing.value.kind == "schema_mismatch" and "left after the record" in trailing.value.reason
    label_value = SingleObjectEncoder(load_store().latest("labels")).encode(LABEL)
    with pytest.raises(DecodeError) as other_subject:
        decoder.decode(label_value)
    assert other_subject.value.kind == "schema_mismatch" and "labels v1" in other_subject.value.reason


def test_unknown_registry_id_is_unknown_schema(registry: ConfluentRegistry) -> None:
    with pytest.raises(DecodeError) as error:
        RecordDecoder("transactions", registry=registry).decode(b"\x00\x00\x00\x30\x39\x02a")
    assert error.value.kind == "unknown_schema"


def test_decode_batch_keeps_input_order_and_length() -> None:
    good = SingleObjectEncoder(load_store().latest("transactions")).encode(TRANSACTION)
    batch = RecordDecoder("transactions").decode_batch([good, None, b"junk", bytearray(good), memoryview(good)])
    assert [r is not None for r in batch.records] == [True, False, False, True, True]
    assert [e.kind if e else None for e in batch.errors] == [None, "empty", "garbage", None, None]
    records, errors = batch  # also a plain tuple
    assert len(records) == len(errors) == 5


def test_decoder_and_errors_survive_pickling_for_spark_executors() -> None:
    decoder = RecordDecoder("transactions", registry=ConfluentRegistry("http://registry.invalid:8081"))
    clone = pickle.loads(pickle.dumps(decoder))
    value = SingleObjectEncoder(load_store().latest("transactions")).encode(TRANSACTION)
    assert clone.decode(value) == TRANSACTION
    error = pickle.loads(pickle.dumps(DecodeError("truncated", "cut short")))
    assert (error.kind, error.reason) == ("truncated", "cut short")


def test_encoding_a_record_that_does_not_fit_is_an_encode_error() -> None:
    encoder = SingleObjectEncoder(load_store().latest("transactions"))
    with pytest.raises(EncodeError):
        encoder.encode({**TRANSACTION, "amount": "twelve"})
    with pytest.raises(EncodeError):
        encoder.encode_many([{**TRANSACTION, "channel": "PHONE"}])


_DECODER = RecordDecoder("transactions")
_V2 = load_store().latest("transactions").fingerprint


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_raise_anything_but_decode_error(value: bytes) -> None:
    try:
        _DECODER.decode(value)
    except DecodeError as error:
        assert error.kind in {"empty", "garbage", "truncated", "unknown_schema", "schema_mismatch"}


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bodies_behind_a_valid_header(body: bytes) -> None:
    """Random bodies after the real fingerprint: the deepest path through fastavro."""
    try:
        record = _DECODER.decode(b"\xc3\x01" + _V2 + body)
    except DecodeError:
        return
    assert set(record) == set(TRANSACTION)  # a lucky body must still be a full record


def test_try_decode_returns_the_error_as_a_value() -> None:
    decoder = RecordDecoder("labels")
    assert decoder.try_decode(SingleObjectEncoder(load_store().latest("labels")).encode(LABEL)) == LABEL
    error = decoder.try_decode(b"\x01\x02")
    assert isinstance(error, DecodeError) and error.kind == "garbage"
