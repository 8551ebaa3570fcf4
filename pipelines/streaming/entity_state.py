"""The stateful stage: per-entity windowed features over event time, in Spark's state store.

Each valid event is exploded into one row per entity it belongs to (its card, its merchant), and rows are
grouped by (entity, entity id) into ``applyInPandasWithState``. The state of an entity is its recent history
(event times plus the columns its aggregates read), pruned against the watermark so it stays bounded by the
windows, and removed once the watermark is ``idle_horizon`` past the entity's latest event.

The timeout is a processing-time one that re-checks idle entities against the watermark: with an event-time
timeout Spark filters rows older than the watermark out before the function sees them (measured on 4.0.0),
and those rows would be lost without a trace.

Dead-lettered rows travel through the same operator under a reserved entity (keyed by source partition) and
come out unchanged: one query, one output, and nothing is lost between stages. Events older than the watermark
when they arrive are not dropped silently: they come out with verdict ``late`` and go to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.domains.base import Domain
from pipelines.streaming import columns as C
from pipelines.transforms.windows import EntityFeatureSet, EntityHistory, compute_window_features

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DEFAULT_IDLE_HORIZON = timedelta(days=30)
IDLE_CHECK_INTERVAL_MS = 3_600_000  # how often (processing time) an idle entity is re-checked


def explode_entities(decoded: DataFrame, domain: Domain, watermark_delay: str) -> DataFrame:
    """One row per (event, entity) for valid events, one row per dead letter; watermark on valid times only.

    Invalid rows may carry absurd event times (that is often why they are invalid): they never move the
    watermark, because their watermark column is null.
    """
    from pyspark.sql import functions as F

    valid = F.col(C.VERDICT) == F.lit(C.OK)
    per_entity = F.array(
        *[F.struct(F.lit(f.entity).alias(C.ENTITY), F.col(f.key_column).alias(C.ENTITY_ID)) for f in domain.entities]
    )
    dead = F.array(
        F.struct(
            F.lit(C.DEAD_LETTER_ENTITY).alias(C.ENTITY),
            F.concat_ws("-", F.col("src_topic"), F.col("src_partition").cast("string")).alias(C.ENTITY_ID),
        )
    )
    return (
        decoded.withColumn("_entity", F.explode(F.when(valid, per_entity).otherwise(dead)))
        .withColumn(C.ENTITY, F.col("_entity." + C.ENTITY))
        .withColumn(C.ENTITY_ID, F.col("_entity." + C.ENTITY_ID))
        .drop("_entity")
        .withColumn(C.EVENT_TIME_MS, F.unix_millis(F.col(domain.event_time_column)))
        .withColumn(C.WATERMARK_TIME, F.when(valid, F.col(domain.event_time_column)))
        .withWatermark(C.WATERMARK_TIME, watermark_delay)
    )


def compute_entity_features(
    exploded: DataFrame, domain: Domain, idle_horizon: timedelta = DEFAULT_IDLE_HORIZON
) -> DataFrame:
    """Apply the stateful feature function; output schema :func:`columns.entity_output_schema`."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    update = EntityStateFunction(domain, idle_horizon)
    return exploded.groupBy(C.ENTITY, C.ENTITY_ID).applyInPandasWithState(
        update,  # type: ignore[arg-type]  # a callable object; pyspark's stub wants a plain function
        outputStructType=C.entity_output_schema(domain),
        stateStructType=C.state_schema(domain),
        outputMode="append",
        timeoutConf=GroupStateTimeout.ProcessingTimeTimeout,
    )


class EntityStateFunction:
    """The function Spark calls per (entity, id) group; picklable, holds only declarations."""

    def __init__(self, domain: Domain, idle_horizon: timedelta) -> None:
        self.domain = domain
        self.idle_horizon_ms = int(idle_horizon.total_seconds() * 1000)
        self.output_columns = [part.strip().split(" ")[0] for part in C.entity_output_schema(domain).split(",")]
        self.numeric = list(dict.fromkeys(c for f in domain.entities for c in f.numeric_columns))
        self.category = list(dict.fromkeys(c for f in domain.entities for c in f.category_columns))

    def __call__(self, key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        entity, _ = key
        if entity == C.DEAD_LETTER_ENTITY:
            for frame in frames:
                yield self._output(frame, pd.DataFrame(index=frame.index))
            return
        features = self.domain.entity(entity)
        if state.hasTimedOut:
            self._expire_or_prune(state, features)
            return
        events = pd.concat(list(frames), ignore_index=True)
        watermark_ms = int(state.getCurrentWatermarkMs())
        late = events[C.EVENT_TIME_MS].to_numpy() < watermark_ms
        history = self._history_from_state(state, features)
        on_time = events[~late]
        computed, history = compute_window_features(features, history, on_time)
        history = history.pruned(watermark_ms - features.retention_ms)
        self._save(state, history, watermark_ms)
        parts = [self._output(on_time, computed)]
        if late.any():
            late_rows = events[late].assign(
                **{
                    C.VERDICT: C.LATE,
                    C.REASON: C.LATE,
                    C.ERROR: f"event time older than the watermark {pd.Timestamp(watermark_ms, unit='ms', tz='UTC')}",
                }
            )
            parts.append(self._output(late_rows, pd.DataFrame(index=late_rows.index)))
        yield pd.concat(parts, ignore_index=True)

    def _history_from_state(self, state: Any, features: EntityFeatureSet) -> EntityHistory:
        if not state.exists:
            return EntityHistory.empty(features)
        stored = state.get
        times = np.frombuffer(bytes(stored[0]), dtype="<i8")
        numeric = dict(zip(self.numeric, stored[1 : 1 + len(self.numeric)], strict=True))
        category = dict(zip(self.category, stored[1 + len(self.numeric) :], strict=True))
        return EntityHistory(
            times_ms=times,
            numeric={c: np.frombuffer(bytes(numeric[c]), dtype="<f8") for c in features.numeric_columns},
            categories={c: _unpack_strings(category[c], len(times)) for c in features.category_columns},
        )

    def _save(self, state: Any, history: EntityHistory, watermark_ms: int) -> None:
        size = len(history)
        state.update(
            (
                history.times_ms.astype("<i8").tobytes(),
                *[history.numeric.get(c, np.zeros(size)).astype("<f8").tobytes() for c in self.numeric],
                *[_pack_strings(history.categories.get(c, [""] * size)) for c in self.category],
            )
        )
        state.setTimeoutDuration(IDLE_CHECK_INTERVAL_MS)

    def _expire_or_prune(self, state: Any, features: EntityFeatureSet) -> None:
        """On a timeout: forget an entity idle past the horizon (event time), else prune and re-arm."""
        watermark_ms = int(state.getCurrentWatermarkMs())
        history = self._history_from_state(state, features)
        if history.latest_ms is None or watermark_ms - history.latest_ms >= self.idle_horizon_ms:
            state.remove()
            return
        self._save(state, history.pruned(watermark_ms - features.retention_ms), watermark_ms)

    def _output(self, rows: pd.DataFrame, computed: pd.DataFrame) -> pd.DataFrame:
        """Rows in the exact output schema order; features absent from ``computed`` are null."""
        out = rows.join(computed) if len(computed.columns) else rows
        return out.reindex(columns=self.output_columns)


_SEPARATOR = "\x1f"  # ASCII unit separator: not expected inside entity ids or categories


def _pack_strings(values: Any) -> str:
    return _SEPARATOR.join(str(v) for v in values)


def _unpack_strings(packed: str, size: int) -> np.ndarray:
    return np.array(packed.split(_SEPARATOR) if size else [], dtype=object)
