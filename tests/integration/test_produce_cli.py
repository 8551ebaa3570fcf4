"""`featurestream produce` against the real broker: everything produced is read back, counts match exactly."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message
from typer.testing import CliRunner

from pipelines.cli import produce_commands
from pipelines.cli.main import app
from pipelines.config import Settings
from pipelines.generator import INVALID_KINDS, UNDECODABLE_KINDS
from pipelines.generator.timing import DAY_MS, wall_clock_ms
from pipelines.kafka.client_config import consumer_config
from pipelines.kafka.producer import TopicMissingError
from pipelines.kafka.topics import admin_client, delete_topics, ensure_topics
from pipelines.produce import BAD_KIND_HEADER, ProduceSummary
from pipelines.schemas.reference import countries, currencies
from pipelines.serde import DecodeError, RecordDecoder
from pipelines.testing import unique_topic

RULE_OF_KIND = {
    "negative_amount": "amount",
    "absurd_amount": "amount",
    "unknown_currency": "currency",
    "unknown_country": "country",
    "future_event_time": "event_time",
}


def _violations(record: dict[str, Any], now_ms: int) -> list[str]:
    """The transactions suite's rules as issue 3 states them."""
    problems = []
    if not 0 < record["amount"] <= 50_000:
        problems.append("amount")
    if record["currency"] not in currencies():
        problems.append("currency")
    if record["country"] not in countries():
        problems.append("country")
    if record["event_time"] > now_ms + DAY_MS:
        problems.append("event_time")
    return problems


@pytest.fixture
def project_topics(kafka: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """Fresh transactions and labels topics, and the CLI's environment pointing at them and the test broker."""
    transactions, labels = unique_topic("tx"), unique_topic("labels")
    admin = admin_client(kafka)
    ensure_topics(admin, [transactions, labels], partitions=3, replication_factor=1)
    monkeypatch.setenv("FEATURESTREAM_STACK__STATE_DIR", str(kafka.stack.state_dir))
    monkeypatch.setenv("FEATURESTREAM_STACK__BROKER_PORT", str(kafka.stack.broker_port))
    monkeypatch.setenv("FEATURESTREAM_STACK__CONTROLLER_PORT", str(kafka.stack.controller_port))
    monkeypatch.setenv("FEATURESTREAM_KAFKA__TOPICS__TRANSACTIONS", transactions)
    monkeypatch.setenv("FEATURESTREAM_KAFKA__TOPICS__LABELS", labels)
    yield transactions, labels
    delete_topics(admin, [transactions, labels])


@pytest.fixture
def summaries(monkeypatch: pytest.MonkeyPatch) -> list[ProduceSummary]:
    """The summary dataclass each CLI run prints, captured as it is handed to the printer."""
    captured: list[ProduceSummary] = []
    original = produce_commands._finish

    def capture(summary: ProduceSummary) -> None:
        captured.append(summary)
        original(summary)

    monkeypatch.setattr(produce_commands, "_finish", capture)
    return captured


def _read_all(settings: Settings, topics: list[str], expected: int) -> list[Message]:
    consumer = Consumer(consumer_config(settings, f"test-{uuid.uuid4()}"))
    consumer.subscribe(topics)
    messages: list[Message] = []
    idle = 0
    try:
        while idle < 5 or len(messages) < expected:
            batch = consumer.consume(10_000, timeout=1.0)
            if not batch:
                idle += 1
                if idle > 60:
                    break
                continue
            idle = 0
            for message in batch:
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_produce_transactions_reads_back_exactly_what_the_summary_says(
    kafka: Settings, project_topics: tuple[str, str], summaries: list[ProduceSummary]
) -> None:
    transactions_topic, labels_topic = project_topics
    started_ms = wall_clock_ms()
    result = CliRunner().invoke(
        app,
        ["produce", "transactions", "--count", "6000", "--seed", "3", "--duration", "12h", "--bad-fraction", "0.05",
         "--fraud-rate", "0.02", "--out-of-order-fraction", "0.01", "--late-fraction", "0.01", "--quiet"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (summary,) = summaries
    assert summary.ok and summary.sent == 6000 and summary.failed == 0
    assert set(summary.bad_by_kind) == set(UNDECODABLE_KINDS + INVALID_KINDS)
    assert summary.labels is not None and summary.labels.sent > 0
    assert "6,000 events" in result.output

    messages = _read_all(kafka, [transactions_topic, labels_topic], summary.sent + summary.labels.sent)
    on_topic = Counter(m.topic() for m in messages)
    assert on_topic == {transactions_topic: summary.sent, labels_topic: summary.labels.sent}
    assert sum(len(m.value() or b"") for m in messages if m.topic() == transactions_topic) == summary.main.bytes

    decoder = RecordDecoder("transactions")
    bad_seen: Counter[str] = Counter()
    good_ids: set[str] = set()
    for message in (m for m in messages if m.topic() == transactions_topic):
        headers = dict(message.headers() or [])
        header = headers.get(BAD_KIND_HEADER)
        kind = header.decode() if isinstance(header, bytes) else None
        if kind in UNDECODABLE_KINDS:
            with pytest.raises(DecodeError):
                decoder.decode(message.value())
        else:
            record = decoder.decode(message.value())
            assert message.key() == record["card_id"].encode()
            expected = [RULE_OF_KIND[kind]] if kind else []
            assert _violations(record, started_ms) == expected, (kind, record)
            if kind is None:
                good_ids.add(record["event_id"])
        if kind:
            bad_seen[kind] += 1
    assert dict(bad_seen) == dict(summary.bad_by_kind)
    assert len(good_ids) == summary.sent - summary.bad

    label_decoder = RecordDecoder("labels")
    labels = [label_decoder.decode(m.value()) for m in messages if m.topic() == labels_topic]
    assert {label["event_id"] for label in labels} <= good_ids
    assert sum(1 for label in labels if label["is_fraud"]) == sum(summary.fraud_by_pattern.values())


def test_produce_file_replays_json_lines_and_reports_rejected_records(
    kafka: Settings, project_topics: tuple[str, str], summaries: list[ProduceSummary], tmp_path: Path
) -> None:
    transactions_topic, _ = project_topics
    row = {
        "event_id": "e", "card_id": "card-1", "merchant_id": "mrc-1", "amount": 12.5, "currency": "EUR",
        "mcc": "5411", "country": "DE", "channel": "POS", "event_time": "2024-05-01T08:00:00Z",
    }  # fmt: skip
    rows = [{**row, "event_id": f"e{i}", "card_id": f"card-{i % 7}"} for i in range(300)]
    rows[17]["amount"] = "lots"  # one record of the wrong type: rejected, counted, exit code 2
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    result = CliRunner().invoke(
        app, ["produce", "file", str(path), "--topic", transactions_topic, "--quiet"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == produce_commands.DELIVERY_FAILED_EXIT, result.output
    (summary,) = summaries
    assert (summary.sent, summary.failed, summary.rejected) == (299, 0, 1)
    assert "record 18" in summary.rejection_examples[0]

    messages = _read_all(kafka, [transactions_topic], 299)
    decoded = [RecordDecoder("transactions").decode(m.value()) for m in messages]
    assert sorted(str(r["event_id"]) for r in decoded) == sorted(
        str(r["event_id"]) for i, r in enumerate(rows) if i != 17
    )
    assert all(m.key() == r["card_id"].encode() for m, r in zip(messages, decoded, strict=True))
    assert decoded[0]["event_time"] == 1_714_550_400_000


def test_a_missing_topic_is_a_clear_error_before_anything_is_produced(
    kafka: Settings, project_topics: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURESTREAM_KAFKA__TOPICS__TRANSACTIONS", unique_topic("missing"))
    result = CliRunner().invoke(app, ["produce", "transactions", "--count", "10", "--quiet"])
    assert isinstance(result.exception, TopicMissingError)
    assert "do not exist" in str(result.exception) and "featurestream stack up" in str(result.exception)
