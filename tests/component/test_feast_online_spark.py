"""The online writer as the streaming job uses it: shipped to Spark's Python workers, one write per partition."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyspark.sql import SparkSession

from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.feast_io.writers import online_writer
from pipelines.testing import isolated_settings

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
STATS_SCHEMA = "rows long, entities long, written long, stale long"


def test_partitions_write_each_cards_latest_event(spark: SparkSession, tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    apply_repo(settings)
    writer = online_writer(settings)  # on the driver, as the job does
    # 40 cards x 25 events, shuffled over 4 partitions: each card's events land in several partitions.
    events = [
        (f"card-{card}", T0 + timedelta(seconds=event, milliseconds=card), event + 1, float(event))
        for card in range(40)
        for event in range(25)
    ]
    frame = spark.createDataFrame(
        events, "card_id string, event_time timestamp, card_txn_count_1h long, card_amount_sum_1h double"
    ).repartition(4)
    for name, kind in [
        ("card_txn_count_10m", "long"),
        ("card_txn_count_24h", "long"),
        ("card_distinct_merchants_24h", "long"),
        ("card_amount_sum_24h", "double"),
        ("card_amount_max_24h", "double"),
        ("card_amount_mean_24h", "double"),
        ("card_seconds_since_prev_txn", "double"),
    ]:
        frame = frame.withColumn(name, frame["card_txn_count_1h"].cast(kind))

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stats = writer.write_batches("card_features", batches)
        yield pa.RecordBatch.from_pylist(
            [{"rows": stats.rows, "entities": stats.entities, "written": stats.written, "stale": stats.stale}]
        )

    stats = frame.mapInArrow(write_partition, STATS_SCHEMA).collect()

    assert sum(row.rows for row in stats) == 1000
    response = feature_store(settings).get_online_features(
        features=["card_features:card_txn_count_1h", "card_features:card_amount_sum_1h"],
        entity_rows=[{"card_id": f"card-{card}"} for card in range(40)],
    )
    result = response.to_dict()
    assert result["card_txn_count_1h"] == [25] * 40
    assert result["card_amount_sum_1h"] == [24.0] * 40
