"""The default domain: card-transaction fraud scoring (features per card and per merchant)."""

from __future__ import annotations

from datetime import timedelta

from pipelines.domains.base import Domain
from pipelines.transforms.windows import EntityFeatureSet, WindowAggregate

TEN_MINUTES = timedelta(minutes=10)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)

CARD_FEATURES = EntityFeatureSet(
    entity="card",
    key_column="card_id",
    feature_view="card_features",
    aggregates=(
        WindowAggregate("card_txn_count_10m", "count", TEN_MINUTES, dtype="int64"),
        WindowAggregate("card_txn_count_1h", "count", HOUR, dtype="int64"),
        WindowAggregate("card_txn_count_24h", "count", DAY, dtype="int64"),
        WindowAggregate("card_amount_sum_1h", "sum", HOUR, "amount"),
        WindowAggregate("card_amount_sum_24h", "sum", DAY, "amount"),
        WindowAggregate("card_amount_max_24h", "max", DAY, "amount"),
        WindowAggregate("card_amount_mean_24h", "mean", DAY, "amount"),
        WindowAggregate("card_distinct_merchants_24h", "count_distinct", DAY, "merchant_id", dtype="int64"),
        WindowAggregate("card_seconds_since_prev_txn", "seconds_since_prev"),
    ),
)

MERCHANT_FEATURES = EntityFeatureSet(
    entity="merchant",
    key_column="merchant_id",
    feature_view="merchant_features",
    aggregates=(
        WindowAggregate("merchant_txn_count_1h", "count", HOUR, dtype="int64"),
        WindowAggregate("merchant_amount_mean_24h", "mean", DAY, "amount"),
    ),
)

CARD_FRAUD = Domain(
    name="card_fraud",
    event_subject="transactions",
    event_id_column="event_id",
    event_time_column="event_time",
    entities=(CARD_FEATURES, MERCHANT_FEATURES),
)
