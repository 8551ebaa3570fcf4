"""The streaming feature job end to end: real broker, Spark's Kafka source, GX, Feast online and offline.

Generated traffic (with bad records of every kind) is produced, the job drains it (availableNow), and the
results are checked against an independent computation in plain pandas over the produced events.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import Settings
from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.feast_io.writers import online_writer
from pipelines.generator.generator import GeneratorOptions
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.produce.transactions import produce_transactions
from pipelines.serde.decoder import RecordDecoder
from pipelines.testing import stream_settings
from pipelines.testing.kafka import read_topic
from pipelines.testing.reference import reference_features
from pipelines.testing.streams import run_until_drained
from pipelines.training.skew import measure_skew
from pipelines.validation.engine import validate_rows

START = datetime(2026, 11, 1, tzinfo=UTC)
COUNT = 6_000
DECODE_KINDS = {
    "garbage_bytes",
    "truncated_avro",
    "unknown_schema_fingerprint",
    "wrong_field_types",
    "null_required_fields",
}


@pytest.fixture
def streamed(kafka: Settings, spark: SparkSession, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    settings = stream_settings(kafka, tmp_path)
    topics = settings.kafka.topics
    ensure_topics(admin_client(settings), topics.all(), partitions=3, replication_factor=1)
    apply_repo(settings)
    options = GeneratorOptions(
        count=COUNT,
        now_ms=int(datetime.now(UTC).timestamp() * 1000),
        seed=11,
        cards=400,
        merchants=60,
        start_ms=int(START.timestamp() * 1000),
        duration_ms=2 * 24 * 3600 * 1000,
        bad_fraction=0.03,
    )
    summary = produce_transactions(settings, options, labels=False)
    running = run_until_drained(spark, settings)
    return {"settings": settings, "summary": summary, "history": running.writer.history, "running": running}


def test_every_record_is_valid_or_dead_lettered_with_its_source(streamed: dict) -> None:  # type: ignore[type-arg]
    settings, summary, history = streamed["settings"], streamed["summary"], streamed["history"]
    read = sum(b.records_read for b in history)
    valid = sum(b.valid for b in history)
    dead = sum(b.dead_lettered for b in history)
    assert read == summary.main.sent == COUNT
    assert valid + dead == read
    bad = summary.bad_by_kind
    assert dead == sum(bad.values())
    by_reason: dict[str, int] = {}
    for batch in history:
        for reason, count in batch.dead_letters_by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    assert sum(v for k, v in by_reason.items() if k.startswith("undecodable")) == sum(
        bad.get(kind, 0) for kind in DECODE_KINDS
    )
    assert by_reason.get("invalid", 0) == sum(v for k, v in bad.items() if k not in DECODE_KINDS)

    letters = read_topic(settings, settings.kafka.topics.dead_letter)
    assert len(letters) == dead
    sources = set()
    for message in letters:
        headers = dict(message.headers())
        assert headers["__connect.errors.topic"].decode() == settings.kafka.topics.transactions
        assert headers["featurestream.reason"].decode()
        sources.add((int(headers["__connect.errors.partition"]), int(headers["__connect.errors.offset"])))
    assert len(sources) == dead  # each dead letter names a distinct source record


def test_online_and_offline_features_equal_an_independent_computation(streamed: dict) -> None:  # type: ignore[type-arg]
    settings = streamed["settings"]
    decoder = RecordDecoder("transactions")
    produced = read_topic(settings, settings.kafka.topics.transactions)
    records, arrival = [], []
    for message in produced:
        try:
            records.append(decoder.decode(message.value()))
            arrival.append((message.partition(), message.offset()))
        except Exception:
            continue
    events = pd.DataFrame(records)
    events["event_time_ms"] = events["event_time"].astype("int64")
    events["event_time"] = pd.to_datetime(events["event_time_ms"], unit="ms", utc=True)
    verdicts = validate_rows(events, now=datetime.now(UTC))
    valid = events[verdicts.valid].copy()
    valid["_partition"] = [arrival[i][0] for i in np.flatnonzero(verdicts.valid)]
    valid["_offset"] = [arrival[i][1] for i in np.flatnonzero(verdicts.valid)]
    valid = valid.sort_values(["_partition", "_offset"]).reset_index(drop=True)
    card_expected = valid[["event_id"]].join(reference_features(valid, CARD_FEATURES)).set_index("event_id")
    merchant_expected = valid[["event_id"]].join(reference_features(valid, MERCHANT_FEATURES)).set_index("event_id")

    # Online: each card's latest values, through the CLI's JSON.
    cards = valid.sort_values("event_time_ms").groupby("card_id").tail(1).sample(40, random_state=3)
    runner = CliRunner()
    env = {
        "FEATURESTREAM_STACK__STATE_DIR": str(settings.stack.state_dir),
        "FEATURESTREAM_STACK__BROKER_PORT": str(settings.stack.broker_port),
        "FEATURESTREAM_STACK__CONTROLLER_PORT": str(settings.stack.controller_port),
    }
    result = runner.invoke(app, ["features", "get", "card", *cards["card_id"], "--json"], env=env)
    assert result.exit_code == 0, result.output
    online = {row["card_id"]: row for row in json.loads(result.output)}
    for _, event in cards.iterrows():
        got = online[event["card_id"]]
        want = card_expected.loc[event["event_id"]]
        for name in CARD_FEATURES.feature_names:
            if math.isnan(want[name]):
                assert got[name] is None, name
            else:
                assert got[name] == pytest.approx(want[name], rel=1e-9), (event["card_id"], name)
        # Feast's online store keeps event timestamps in whole seconds.
        assert pd.Timestamp(got["event_time"]) == event["event_time"].floor("s")

    # Offline: Feast's point-in-time join at each sampled event's own timestamp returns that event's features.
    sample = valid.sample(300, random_state=5)
    entity_df = pd.DataFrame(
        {"card_id": sample["card_id"], "merchant_id": sample["merchant_id"], "event_timestamp": sample["event_time"]}
    )
    store = feature_store(settings)
    joined = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service("fraud_model_v1")
    ).to_df()
    joined = joined.merge(
        sample[["card_id", "merchant_id", "event_time", "event_id"]],
        left_on=["card_id", "merchant_id", "event_timestamp"],
        right_on=["card_id", "merchant_id", "event_time"],
    )
    assert len(joined) >= len(sample) - 2  # same-millisecond duplicates of one card may collapse
    mismatches = 0
    for _, row in joined.iterrows():
        for spec, table in ((CARD_FEATURES, card_expected), (MERCHANT_FEATURES, merchant_expected)):
            want = table.loc[row["event_id"]]
            for name in spec.feature_names:
                if math.isnan(want[name]):
                    mismatches += not pd.isna(row[name])
                else:
                    mismatches += not math.isclose(row[name], want[name], rel_tol=1e-9)
    assert mismatches == 0


def test_a_restart_on_the_same_checkpoint_reprocesses_nothing(streamed: dict, spark: SparkSession) -> None:  # type: ignore[type-arg]
    settings = streamed["settings"]
    offline = Path(settings.stack.state_dir) / "feast" / "offline" / "card_features"
    files_before = sorted(p.name for p in offline.rglob("*.parquet"))
    again = run_until_drained(spark, settings, timeout_s=300)
    assert sum(b.records_read for b in again.writer.history) == 0
    assert sorted(p.name for p in offline.rglob("*.parquet")) == files_before


def test_the_skew_report_finds_none_and_catches_an_online_value_gone_wrong(streamed: dict) -> None:  # type: ignore[type-arg]
    settings = streamed["settings"]
    clean = measure_skew(settings, sample=COUNT)
    assert clean.sampled_events > 0.8 * COUNT
    assert clean.offline_values > 0 and clean.online_values > 0
    assert (clean.offline_mismatches, clean.online_mismatches) == (0, 0), clean.examples

    # Serving skew: one card's online row replaced by a newer one the stream never computed.
    events = pd.read_parquet(Path(settings.stack.state_dir) / "feast" / "offline" / "events", columns=["card_id"])
    victim = events["card_id"].value_counts().index[0]  # the busiest card: surely among the sampled events
    rows = pd.DataFrame(
        {
            "card_id": [victim],
            "event_time": [pd.Timestamp.now(tz="UTC")],
            **{name: [999.0] for name in CARD_FEATURES.feature_names},
        }
    )
    online_writer(settings).write("card_features", rows)
    skewed = measure_skew(settings, sample=COUNT)
    assert skewed.offline_mismatches == 0
    assert skewed.online_mismatches == len(CARD_FEATURES.feature_names)
    assert {example["id"] for example in skewed.examples} == {victim}


def test_each_batch_times_its_plan_and_its_job_apart(streamed: dict) -> None:  # type: ignore[type-arg]
    """The driver's fixed cost before the job is its own stage, and the stages add up to no more than the batch."""
    for batch in streamed["history"]:
        assert set(batch.stage_seconds) == {"build_plan", "features_and_writes"}
        assert all(seconds >= 0 for seconds in batch.stage_seconds.values())
        assert sum(batch.stage_seconds.values()) <= batch.seconds + 0.002  # each part is rounded on its own
        assert batch.stage_seconds["build_plan"] < batch.stage_seconds["features_and_writes"]


def test_the_metrics_equal_the_counts_of_the_run(streamed: dict) -> None:  # type: ignore[type-arg]
    """The job's Prometheus metrics, as exposed, say what the produced traffic says (no data scanned twice)."""
    from prometheus_client.parser import text_string_to_metric_families

    from pipelines.observability import metrics as M

    summary = streamed["summary"]
    exposed: dict[str, float] = {}
    dead_by_reason: dict[str, float] = {}
    text = streamed["running"].observer.metrics.exposition().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exposed[sample.name] = exposed.get(sample.name, 0.0) + sample.value
            if sample.name == M.RECORDS_DEAD_LETTERED:
                reason = sample.labels["reason"]
                dead_by_reason[reason] = dead_by_reason.get(reason, 0.0) + sample.value
    bad = summary.bad_by_kind
    assert exposed[M.RECORDS_READ] == COUNT
    assert exposed[M.RECORDS_VALID] == COUNT - sum(bad.values())
    assert sum(v for k, v in dead_by_reason.items() if k.startswith("undecodable")) == sum(
        bad.get(kind, 0) for kind in DECODE_KINDS
    )
    assert dead_by_reason.get("invalid", 0) == sum(v for k, v in bad.items() if k not in DECODE_KINDS)
    assert exposed[M.BATCHES] == len(streamed["history"])
