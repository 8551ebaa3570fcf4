"""Feast definitions of the card-fraud domain: entities, Parquet sources, feature views, the model's service.

Every feature is computed by the streaming job for each event, over the entity's events with event time in
(t - window, t]; one row per event lands in the offline store and the latest per entity in the online store.

TTL is unbounded on purpose. The online store serves an entity's latest row however old it is (Feast's SQLite
and Redis reads do not apply the TTL), so the point-in-time join must find the same row at any timestamp,
or training and serving would disagree for entities idle longer than the TTL. A finite TTL would turn those
into nulls offline only.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64, String

from pipelines.feast_io.paths import offline_view_path
from pipelines.feast_io.store import definition_settings

EVENT_TIME = "event_time"
UNBOUNDED_TTL = timedelta(0)  # Feast's spelling of "no TTL"

_settings = definition_settings()

card = Entity(
    name="card",
    join_keys=["card_id"],
    value_type=ValueType.STRING,
    description="A payment card.",
)
merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.STRING,
    description="A merchant accepting card payments.",
)

card_features_source = FileSource(
    name="card_features_source",
    path=str(offline_view_path(_settings, "card_features")),
    timestamp_field=EVENT_TIME,
    file_format=ParquetFormat(),
    description="Per-event card features written by the streaming job, one folder per micro-batch.",
)
merchant_features_source = FileSource(
    name="merchant_features_source",
    path=str(offline_view_path(_settings, "merchant_features")),
    timestamp_field=EVENT_TIME,
    file_format=ParquetFormat(),
    description="Per-event merchant features written by the streaming job, one folder per micro-batch.",
)

# Push sources: what Feast's feature server accepts on POST /push (to="online"). The streaming job does not
# use them; they let a user correct or backfill online values over HTTP. The feature server runs on a guarded
# store (pipelines/feast_io/guarded_store.py), so a pushed row older than the stored one is ignored.
card_features_push = PushSource(
    name="card_features_push",
    batch_source=card_features_source,
    description="Online pushes of card features (Feast's POST /push).",
)
merchant_features_push = PushSource(
    name="merchant_features_push",
    batch_source=merchant_features_source,
    description="Online pushes of merchant features (Feast's POST /push).",
)

card_features = FeatureView(
    name="card_features",
    entities=[card],
    ttl=UNBOUNDED_TTL,
    schema=[
        Field(name="card_id", dtype=String),
        Field(name="card_txn_count_10m", dtype=Int64),
        Field(name="card_txn_count_1h", dtype=Int64),
        Field(name="card_txn_count_24h", dtype=Int64),
        Field(name="card_amount_sum_1h", dtype=Float64),
        Field(name="card_amount_sum_24h", dtype=Float64),
        Field(name="card_amount_max_24h", dtype=Float64),
        Field(name="card_amount_mean_24h", dtype=Float64),
        Field(name="card_distinct_merchants_24h", dtype=Int64),
        Field(
            name="card_seconds_since_prev_txn",
            dtype=Float64,
            description="Seconds since the card's previous event; null for its first event.",
        ),
    ],
    source=card_features_push,
    online=True,
    description="Card activity over 10 minutes to 24 hours, as of each of the card's events.",
)

merchant_features = FeatureView(
    name="merchant_features",
    entities=[merchant],
    ttl=UNBOUNDED_TTL,
    schema=[
        Field(name="merchant_id", dtype=String),
        Field(name="merchant_txn_count_1h", dtype=Int64),
        Field(name="merchant_amount_mean_24h", dtype=Float64),
    ],
    source=merchant_features_push,
    online=True,
    description="Merchant activity over 1 to 24 hours, as of each of the merchant's events.",
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[card_features, merchant_features],
    description="Features the fraud model version 1 scores with.",
)
