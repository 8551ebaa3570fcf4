"""The stateful stage: per-entity windowed features over event time, in Spark's state store.

Each valid event is exploded into one row per entity it belongs to (its card, its merchant). Rows are grouped
by (entity type, state bucket) into ``applyInPandasWithState``, where a bucket is a hash of the entity id:
pyspark's per-group cost (a few milliseconds per call, measured) would dominate if every card were its own
group, so one call computes the features of all the bucket's entities at once, vectorised
(:func:`compute_window_features`). The bucket's state is the recent history of its entities, pruned against
the watermark so it stays bounded by the windows, and an entity idle for ``idle_horizon`` (event time) is
forgotten.

Dead-lettered rows travel through the same operator under a reserved entity type and come out unchanged: one
query, one output, nothing lost between stages. Events older than the watermark when they arrive are not
dropped: they come out with verdict ``late`` and go to the dead-letter topic. (No state timeout is used: with
an event-time timeout Spark filters late rows out before the function sees them, silently.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.domains.base import Domain
from pipelines.streaming import columns as C
from pipelines.transforms.history_codec import decode_history, encode_history
from pipelines.transforms.windows import EntityFeatureSet, EntityHistory, compute_window_features

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DEFAULT_IDLE_HORIZON = timedelta(days=30)
DEFAULT_STATE_BUCKETS = 16


def explode_entities(
    decoded: DataFrame, domain: Domain, watermark_delay: str, state_buckets: int = DEFAULT_STATE_BUCKETS
) -> DataFrame:
    """One row per (event, entity) for valid events, one row per dead letter; watermark on valid times only.

    Invalid rows may carry absurd event times (that is often why they are invalid): they never move the
    watermark, because their watermark column is null.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import to_avro

    valid = F.col(C.VERDICT) == F.lit(C.OK)
    other_entity = F.col(C.ENTITY).isin([f.entity for f in domain.entities[1:]])
    per_entity = F.array(
        *[F.struct(F.lit(f.entity).alias(C.ENTITY), F.col(f.key_column).alias(C.ENTITY_ID)) for f in domain.entities]
    )
    dead = F.array(
        F.struct(
            F.lit(C.DEAD_LETTER_ENTITY).alias(C.ENTITY),
            F.concat_ws("-", F.col("src_topic"), F.col("src_partition").cast("string")).alias(C.ENTITY_ID),
        )
    )
    # Only the first entity's row of an event carries the payload (the original bytes, the event's other
    # fields): that row alone feeds dead letters and the events dataset, and the others cost less to move.
    packed = to_avro(F.struct(*[F.col(name) for name, _ in C.payload_fields(domain)]), C.payload_avro_schema(domain))
    return (
        decoded.withColumn("_entity", F.explode(F.when(valid, per_entity).otherwise(dead)))
        .withColumn(C.ENTITY, F.col("_entity." + C.ENTITY))
        .withColumn(C.ENTITY_ID, F.col("_entity." + C.ENTITY_ID))
        .withColumn(C.WATERMARK_TIME, F.when(valid, F.col(domain.event_time_column)))
        .withWatermark(C.WATERMARK_TIME, watermark_delay)
        .select(
            *[F.col(c) for c in C.state_columns(domain)],
            F.col(C.ENTITY),
            F.col(C.ENTITY_ID),
            F.pmod(F.xxhash64(C.ENTITY_ID), F.lit(state_buckets)).alias(C.STATE_BUCKET),
            F.unix_millis(F.col(domain.event_time_column)).alias(C.EVENT_TIME_MS),
            F.col(C.WATERMARK_TIME),
            F.when(other_entity, F.lit(None)).otherwise(packed).alias(C.PAYLOAD),
        )
    )


def compute_entity_features(
    exploded: DataFrame,
    domain: Domain,
    idle_horizon: timedelta = DEFAULT_IDLE_HORIZON,
    state_buckets: int = DEFAULT_STATE_BUCKETS,
) -> DataFrame:
    """Apply the stateful feature function; output schema :func:`columns.entity_output_schema`.
    ``state_buckets`` must be the count ``exploded`` was bucketed with (:func:`explode_entities`)."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    update = EntityStateFunction(domain, idle_horizon, state_buckets)
    stateful = exploded.groupBy(C.ENTITY, C.STATE_BUCKET).applyInPandasWithState(
        update,  # type: ignore[arg-type]  # a callable object; pyspark's stub wants a plain function
        outputStructType=C.stateful_output_schema(domain),
        stateStructType=C.state_schema(domain),
        outputMode="append",
        timeoutConf=GroupStateTimeout.NoTimeout,
    )
    return unpack_payload(stateful, domain)


def unpack_payload(stateful: DataFrame, domain: Domain) -> DataFrame:
    """The stateful stage's output in :func:`columns.entity_output_schema`: the payload decoded back to columns.

    The Avro value is decoded once per row, into a struct column, in its own projection: selecting each field
    of ``from_avro(...)`` directly would decode the whole value again for every field (measured: ~4 s per
    200,000-event batch on this machine); Spark keeps a projection holding an expensive expression apart from
    the one reading its fields several times.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    unpacked = "_unpacked_payload"
    decoded = stateful.withColumn(unpacked, from_avro(F.col(C.PAYLOAD), C.payload_avro_schema(domain)))
    restored = {name: F.col(f"{unpacked}.{name}") for name, _ in C.payload_fields(domain)}
    restored[domain.event_time_column] = F.timestamp_millis(F.col(C.EVENT_TIME_MS))
    names = C.column_names(C.entity_output_schema(domain))
    return decoded.select(*[restored[n].alias(n) if n in restored else F.col(n) for n in names])


class EntityStateFunction:
    """The function Spark calls per (entity type, bucket) group; picklable, holds only declarations."""

    def __init__(self, domain: Domain, idle_horizon: timedelta, state_buckets: int = DEFAULT_STATE_BUCKETS) -> None:
        self.domain = domain
        self.idle_horizon_ms = int(idle_horizon.total_seconds() * 1000)
        self.state_buckets = state_buckets
        self.output_columns = C.column_names(C.stateful_output_schema(domain))

    def __call__(self, key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        entity = key[0]
        if entity == C.DEAD_LETTER_ENTITY:
            for frame in frames:
                yield self._output(frame.assign(**{C.IS_LATEST: False}))
            return
        features = self.domain.entity(entity)
        events = pd.concat(list(frames), ignore_index=True)
        events[features.key_column] = events[C.ENTITY_ID]  # the key column itself travels in the payload
        watermark_ms = int(state.getCurrentWatermarkMs())
        late = events[C.EVENT_TIME_MS].to_numpy() < watermark_ms
        on_time = events[~late]
        computed, history = compute_window_features(features, self._load(state, features), on_time)
        history = history.pruned(
            horizon_ms=watermark_ms - features.retention_ms, forget_before_ms=watermark_ms - self.idle_horizon_ms
        )
        self._save(state, history)
        parts = [self._output(on_time.join(computed))]
        if late.any():
            watermark = pd.Timestamp(watermark_ms, unit="ms", tz="UTC")
            late_rows = events[late].copy()
            late_rows[C.VERDICT] = C.LATE
            late_rows[C.REASON] = C.LATE
            late_rows[C.ERROR] = f"event time older than the watermark {watermark.isoformat()}"
            late_rows[C.IS_LATEST] = False
            parts.append(self._output(late_rows))
        yield pd.concat(parts, ignore_index=True)

    def _load(self, state: Any, features: EntityFeatureSet) -> EntityHistory:
        if not state.exists:
            return EntityHistory.empty(features)
        return decode_history(bytes(state.get[0]), features, state_buckets=self.state_buckets)

    def _save(self, state: Any, history: EntityHistory) -> None:
        state.update((encode_history(history, state_buckets=self.state_buckets),))

    def _output(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows in the exact output schema order; features of other entity types are null."""
        return rows.reindex(columns=self.output_columns)
