"""Pairing an event's entity rows for scoring (pure Arrow, no Spark)."""

from __future__ import annotations

import pyarrow as pa

from pipelines.domains import get_domain
from pipelines.spark.arrow_batches import arrow_schema
from pipelines.streaming import columns as C
from pipelines.streaming.partition_sinks import output_schema
from pipelines.streaming.scoring_pass import event_rows

DOMAIN = get_domain("card_fraud")
CARD, MERCHANT = DOMAIN.entities


def _row(partition: int, offset: int, entity: str, entity_id: str, **features: float) -> dict[str, object]:
    row: dict[str, object] = {
        "src_partition": partition,
        "src_offset": offset,
        C.ENTITY: entity,
        "event_id": f"e-{partition}-{offset}" if entity == CARD.entity else None,
        C.ENTITY_ID: entity_id,
        C.EVENT_TIME_MS: 1_000 * offset,
    }
    row.update(features)
    return row


def test_each_event_gets_its_own_card_and_merchant_features() -> None:
    # Same offset in two source partitions, rows shuffled: only (partition, offset) together names an event.
    rows = [
        _row(1, 7, MERCHANT.entity, "m-b", merchant_txn_count_1h=5),
        _row(0, 7, CARD.entity, "c-a", card_txn_count_1h=1),
        _row(1, 7, CARD.entity, "c-b", card_txn_count_1h=2),
        _row(0, 7, MERCHANT.entity, "m-a", merchant_txn_count_1h=9),
    ]
    slim = pa.Table.from_pylist(rows, schema=arrow_schema(output_schema(DOMAIN))).drop_columns(["partition_stats"])
    events = event_rows(slim, DOMAIN).sort_by([("src_partition", "ascending")]).to_pylist()
    assert [(e["event_id"], e["card_id"], e["card_txn_count_1h"], e["merchant_txn_count_1h"]) for e in events] == [
        ("e-0-7", "c-a", 1, 9),
        ("e-1-7", "c-b", 2, 5),
    ]
    assert events[0]["event_time_ms"] == 7_000


def test_an_event_without_its_merchant_row_is_not_scored() -> None:
    rows = [_row(0, 1, CARD.entity, "c-a", card_txn_count_1h=1)]
    slim = pa.Table.from_pylist(rows, schema=arrow_schema(output_schema(DOMAIN)))
    assert event_rows(slim, DOMAIN).num_rows == 0
