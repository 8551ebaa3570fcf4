"""The mapInPandas step on a real local Spark: verdict columns per row, nothing lost, and the batch summary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipelines.validation import (
    REASONS_COLUMN,
    VALID_COLUMN,
    read_suite_json,
    spark_batch_summary,
    validate_batches_for_spark,
    validation_output_schema,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SCHEMA = (
    "event_id string, card_id string, merchant_id string, amount double, currency string, mcc string, "
    "country string, channel string, event_time timestamp, kafka_offset long"
)

# event_id -> the reasons its row must carry ("" = valid)
EXPECTED = {
    "ok-0": "",
    "neg": "expect_column_values_to_be_between(amount)",
    "cur": "expect_column_values_to_be_in_set(currency)",
    "ok-1": "",
    "ctry+chan": "expect_column_values_to_be_in_set(country); expect_column_values_to_be_in_set(channel)",
    "future": "expect_column_values_to_be_between(event_time)",
    "nocard": "expect_column_values_to_not_be_null(card_id)",
    "ok-2": "",
    "huge": "expect_column_values_to_be_between(amount)",
    "ok-3": "",
    "ok-4": "",
}


def _row(event_id: str, offset: int) -> tuple[object, ...]:
    amount = {"neg": -3.0, "huge": 1e7}.get(event_id, 20.0 + offset)
    currency = "XXQ" if event_id == "cur" else "EUR"
    country, channel = ("ZZ", "WEB") if event_id == "ctry+chan" else ("DE", "POS")
    when = NOW + timedelta(days=2) if event_id == "future" else NOW - timedelta(minutes=offset)
    card = None if event_id == "nocard" else f"card-{offset % 3}"
    return (event_id, card, "m-1", amount, currency, "5411", country, channel, when, offset)


@pytest.fixture
def small_arrow_batches(spark: SparkSession) -> Iterator[None]:
    """Spark hands Python 3-row Arrow batches, so joining them before GX is exercised."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(key, "10000") or "10000"
    spark.conf.set(key, "3")
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def _validated(spark: SparkSession) -> DataFrame:
    rows = [_row(event_id, offset) for offset, event_id in enumerate(EXPECTED)]
    decoded = spark.createDataFrame(rows, SCHEMA).repartition(2)
    step = partial(validate_batches_for_spark, now=NOW, suite_json=read_suite_json(), max_rows=6)
    return decoded.mapInPandas(step, schema=validation_output_schema(decoded.schema))


@pytest.mark.usefixtures("small_arrow_batches")
def test_every_row_comes_back_once_with_its_verdict(spark: SparkSession) -> None:
    validated = _validated(spark)
    got = {row["event_id"]: row for row in validated.collect()}

    assert set(got) == set(EXPECTED)  # records read = valid + dead-lettered, no duplicates
    assert validated.count() == len(EXPECTED)
    for event_id, reasons in EXPECTED.items():
        assert got[event_id][REASONS_COLUMN] == reasons, event_id
        assert got[event_id][VALID_COLUMN] is (reasons == "")
    assert got["ok-3"]["kafka_offset"] == 9  # input columns pass through untouched
    assert got["future"]["event_time"] == (NOW + timedelta(days=2)).replace(tzinfo=None)


@pytest.mark.usefixtures("small_arrow_batches")
def test_batch_summary_from_the_verdict_columns(spark: SparkSession) -> None:
    summary = spark_batch_summary(_validated(spark), now=NOW)

    assert summary.evaluated_rows == len(EXPECTED)
    assert summary.valid_rows == 5
    assert summary.invalid_rows == 6
    assert not summary.success
    counts = summary.unexpected_counts
    assert counts["expect_column_values_to_be_between(amount)"] == 2
    assert counts["expect_column_values_to_be_in_set(channel)"] == 1
    assert counts["expect_column_values_to_not_be_null(card_id)"] == 1
    assert counts["expect_column_values_to_not_be_null(event_id)"] == 0
    assert sum(counts.values()) == 7
    assert '"evaluated_rows": 11' in summary.to_json()


def test_epoch_millis_event_time_column(spark: SparkSession) -> None:
    millis = int(NOW.timestamp() * 1000)
    rows = [
        ("a", "c", "m", 1.0, "EUR", "5411", "DE", "ATM", millis),
        ("b", "c", "m", 1.0, "EUR", "5411", "DE", "ATM", millis + 3 * 86_400_000),
    ]
    decoded = spark.createDataFrame(
        rows,
        "event_id string, card_id string, merchant_id string, amount double, currency string, mcc string, "
        "country string, channel string, event_time long",
    )
    step = partial(validate_batches_for_spark, now=NOW, suite_json=read_suite_json())
    validated = decoded.mapInPandas(step, schema=validation_output_schema(decoded.schema))
    verdicts = {row["event_id"]: row[VALID_COLUMN] for row in validated.collect()}
    assert verdicts == {"a": True, "b": False}
