"""Producing without a broker: file readers and their schema checks, topic subjects, pacing, preflight errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import Settings
from pipelines.kafka.producer import BrokerUnreachableError, check_cluster
from pipelines.produce.files import UnknownTopicSubjectError, _problem, subject_for_topic
from pipelines.produce.pacing import Pacer
from pipelines.produce.readers import FileSchemaMismatchError, UnreadableFileError, detect_format, open_records
from pipelines.produce.summary import ProduceSummary, TopicSummary
from pipelines.schemas.store import load_store
from pipelines.serde import RecordDecoder, SingleObjectEncoder
from pipelines.serde.codec import parse_logical
from pipelines.stack.processes import free_port

TRANSACTIONS = load_store().latest("transactions")
ROW = {
    "event_id": "e1",
    "card_id": "card-1",
    "merchant_id": "mrc-1",
    "amount": 10.0,
    "currency": "EUR",
    "mcc": "5411",
    "country": "DE",
    "channel": "POS",
    "event_time": "2024-05-01T08:00:00Z",
}


def _all(path: Path) -> list[dict]:
    return [record for batch in open_records(path, TRANSACTIONS) for record in batch]


def _round_trip(record: dict) -> dict:
    return RecordDecoder("transactions").decode(SingleObjectEncoder(TRANSACTIONS).encode(record))


def test_json_lines_with_iso_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "tx.jsonl"
    path.write_text(json.dumps(ROW) + "\n\n" + json.dumps({**ROW, "event_id": "e2", "event_time": 1_714_550_400_000}))
    records = _all(path)
    assert [r["event_id"] for r in records] == ["e1", "e2"]
    assert [_round_trip(r)["event_time"] for r in records] == [1_714_550_400_000, 1_714_550_400_000]


def test_parquet_with_timestamp_columns(tmp_path: Path) -> None:
    row = {**ROW, "event_time": datetime(2024, 5, 1, 8, tzinfo=UTC), "device_id": None}
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.Table.from_pylist([row, {**row, "event_id": "e2", "device_id": "dev-9"}]), path)
    records = _all(path)
    assert [_round_trip(r)["device_id"] for r in records] == [None, "dev-9"]
    assert _round_trip(records[0])["event_time"] == 1_714_550_400_000


def test_avro_container_written_with_v1_is_resolved_to_the_current_schema(tmp_path: Path) -> None:
    v1 = load_store().version("transactions", 1)
    path = tmp_path / "tx.avro"
    with path.open("wb") as handle:
        fastavro.writer(handle, parse_logical(v1.definition), [{**ROW, "event_time": 1_714_550_400_000}])
    (record,) = _all(path)
    assert record["device_id"] is None
    assert _round_trip(record)["event_time"] == 1_714_550_400_000


def test_an_avro_file_of_another_schema_is_refused_before_reading(tmp_path: Path) -> None:
    labels = load_store().latest("labels")
    path = tmp_path / "labels.avro"
    with path.open("wb") as handle:
        fastavro.writer(
            handle,
            parse_logical(labels.definition),
            [{"event_id": "e", "card_id": "c", "is_fraud": True, "label_time": 0}],
        )
    with pytest.raises(FileSchemaMismatchError, match="cannot be read as transactions v2"):
        open_records(path, TRANSACTIONS)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({k: v for k, v in ROW.items() if k != "amount"}, "missing required field"),
        ({**ROW, "colour": "red"}, "not in the schema: colour"),
    ],
)
def test_json_lines_that_do_not_match_are_refused(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "tx.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(FileSchemaMismatchError, match=message):
        open_records(path, TRANSACTIONS)


def test_parquet_columns_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.Table.from_pylist([{"event_id": "e1", "card_id": "c"}]), path)
    with pytest.raises(FileSchemaMismatchError, match="missing required field"):
        open_records(path, TRANSACTIONS)


def test_formats_and_unreadable_files(tmp_path: Path) -> None:
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"\x89PNG....")
    with pytest.raises(UnreadableFileError):
        detect_format(odd)
    with pytest.raises(UnreadableFileError, match="does not exist"):
        open_records(tmp_path / "missing.jsonl", TRANSACTIONS)
    sniffed = tmp_path / "records"
    sniffed.write_text(json.dumps(ROW) + "\n")
    assert detect_format(sniffed) == "jsonl"
    broken = tmp_path / "tx.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(FileSchemaMismatchError, match="not JSON"):
        open_records(broken, TRANSACTIONS)


def test_a_record_with_a_wrong_type_is_reported_not_produced() -> None:
    parsed = parse_logical(TRANSACTIONS.definition)
    assert _problem(parsed, {**ROW, "event_time": 1, "amount": "ten"}) is not None
    assert _problem(parsed, {**ROW, "event_time": 1}) is None


def test_topics_map_to_subjects() -> None:
    settings = Settings(kafka={"topics": {"transactions": "tx-test"}})
    assert subject_for_topic(settings, "tx-test") == "transactions"
    assert subject_for_topic(settings, "transactions.dlq") == "dead_letter"
    with pytest.raises(UnknownTopicSubjectError, match="--subject"):
        subject_for_topic(settings, "elsewhere")


def test_an_unreachable_broker_is_a_clear_error() -> None:
    settings = Settings(kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with pytest.raises(BrokerUnreachableError, match="cannot reach Kafka"):
        check_cluster(settings, ["transactions"], timeout_s=1.0)


def test_pacer_sleeps_until_records_are_due() -> None:
    now = [100.0]
    slept: list[float] = []
    pacer = Pacer(10.0, clock=lambda: now[0], sleep=slept.append)
    pacer.wait_for(0)
    pacer.wait_for(5)
    now[0] = 101.0
    pacer.wait_for(5)
    assert slept == [pytest.approx(0.5)]
    Pacer(None, clock=lambda: 0.0, sleep=slept.append).wait_for(10**9)
    assert len(slept) == 1


def test_summary_arithmetic() -> None:
    summary = ProduceSummary(
        main=TopicSummary("t", sent=90, failed=10, bytes=10_000),
        labels=TopicSummary("l", sent=5, failed=0, bytes=300),
        bad_by_kind={"garbage_bytes": 2, "negative_amount": 3},
        elapsed_s=2.0,
    )
    assert (summary.failed, summary.bad, summary.events_per_s, summary.bytes_per_event) == (10, 5, 45.0, 100.0)
    assert not summary.ok
