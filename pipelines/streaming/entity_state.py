"""The stateful stage: per-entity windowed features over event time, in Spark's state store.

Each valid event is exploded into one row per entity it belongs to (its card, its merchant). Rows are grouped
by (entity type, state bucket) into ``transformWithStateInPandas``, where a bucket is a hash of the entity id:
pyspark's per-group cost (a few milliseconds per call, measured) would dominate if every card were its own
group, so one call computes the features of all the bucket's entities at once, vectorised
(:func:`compute_window_features`). The bucket's state is the recent history of its entities, kept as a list of
chunks so a batch writes only its own events (:class:`EntityHistoryProcessor`), pruned against the watermark so
it stays bounded by the windows; an entity idle for ``idle_horizon`` (event time) is forgotten.

Dead-lettered rows travel through the same operator under a reserved entity type and come out unchanged: one
query, one output, nothing lost between stages. Events older than the watermark when they arrive are not
dropped: they come out with verdict ``late`` and go to the dead-letter topic. (In event-time mode Spark drops
rows older than the watermark before the processor sees them, silently, when the grouped input carries the
watermark's column; the column is dropped right before the operator, so every row arrives and the processor
still reads the watermark.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor

from pipelines.domains.base import Domain
from pipelines.errors import ConfigurationError
from pipelines.spark.latest_chunks import LatestChunk, LatestChunks
from pipelines.spark.worker_memory import worker_process_dict
from pipelines.streaming import columns as C
from pipelines.transforms.history_codec import decode_history, encode_history
from pipelines.transforms.windows import EntityFeatureSet, EntityHistory, compute_window_features, events_history

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DEFAULT_IDLE_HORIZON = timedelta(days=30)
DEFAULT_STATE_BUCKETS = 16
HISTORY_CHUNKS_STATE = "history_chunks"
LAST_WRITE_STATE = "last_write"


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
    processor = EntityHistoryProcessor(domain, idle_horizon, state_buckets)
    stateful = (
        exploded.drop(C.WATERMARK_TIME)
        .groupBy(C.ENTITY, C.STATE_BUCKET)
        .transformWithStateInPandas(
            statefulProcessor=processor,
            outputStructType=C.stateful_output_schema(domain),
            outputMode="Append",
            timeMode="EventTime",
        )
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


WORKER_CACHE_MODULE = "_featurestream_entity_histories"
COMPACT_AFTER_CHUNKS = 64
"""A bucket's chunk list is rewritten as one chunk of the pruned history once it holds about this many: events pruned
from the windows leave the state store within that many batches, and a worker that reads the list gets at most that
many chunks. Each (entity type, bucket) is offset by its own place among the groups (:func:`compaction_point`), so
the groups of a stream, whose lists grow in step, do not all compact in the same micro-batch: a compaction rewrites
its bucket's whole history (measured: ~80 ms for a card bucket of ~430,000 events), and the other worker's copy of it
is then read afresh."""


def check_idle_horizon(domain: Domain, idle_horizon: timedelta) -> None:
    """Refuse an idle horizon shorter than the longest feature window.

    An entity idle for ``idle_horizon`` is forgotten, while the windows still count events up to their length
    back: with a shorter horizon, a card quiet for longer than it would lose events that still belong in its
    24-hour features, and when it is forgotten would depend on which copy of the history a batch read."""
    longest = max(domain.entities, key=lambda features: features.retention_ms)
    if idle_horizon.total_seconds() * 1000 < longest.retention_ms:
        window_hours = longest.retention_ms / 3_600_000
        raise ConfigurationError(
            f"stream.idle_entity_days ({idle_horizon.total_seconds() / 86400:g} days) is shorter than the longest "
            f"feature window ({window_hours:g} hours, {longest.entity} features): an entity would be forgotten while "
            f"its events still count; set it to at least {window_hours / 24:g} days"
        )


def compaction_point(compact_after_chunks: int, group_index: int) -> int:
    """How many chunks a group's list may reach before it is compacted: ``compact_after_chunks`` plus the group's
    offset, so consecutive groups compact in consecutive batches."""
    return compact_after_chunks + group_index % compact_after_chunks


def worker_histories() -> dict[tuple[str, int], tuple[str, EntityHistory]]:
    """The decoded histories this Python worker process wrote last, by (entity type, bucket), with the token of
    that write.

    The processor is pickled with every task, so a dict on it would not outlive the task
    (:func:`~pipelines.spark.worker_memory.worker_process_dict`).
    """
    histories: dict[tuple[str, int], tuple[str, EntityHistory]] = worker_process_dict(WORKER_CACHE_MODULE)
    return histories


class EntityHistoryProcessor(StatefulProcessor):
    """Computes a bucket's features over its held history; Spark calls it per (entity type, bucket) group.

    A bucket's state in Spark's state store is a list of chunks, each a self-contained encoded history
    (:mod:`pipelines.transforms.history_codec`): every batch appends the chunk of its own events, so what is
    written per batch follows the batch, not the window. A token naming the last write sits beside the list.
    The Python worker that made that write keeps the decoded history in memory (:func:`worker_histories`) and
    skips reading the chunks; a worker one write behind applies the chunk that write left in a local file
    (:mod:`pipelines.spark.latest_chunks`); any other worker, or one that restarted, or a replayed batch whose
    token rolled back with the state store, decodes the chunks instead. The state store stays the only durable copy, so
    recovery is Spark's own. Every so often (:data:`COMPACT_AFTER_CHUNKS`) the list is replaced by one chunk of
    the pruned history.

    The watermark prunes the history before the batch's events are merged in, whichever way it was read, so
    a cached and a decoded history give the same features.
    """

    def __init__(
        self,
        domain: Domain,
        idle_horizon: timedelta,
        state_buckets: int = DEFAULT_STATE_BUCKETS,
        compact_after_chunks: int = COMPACT_AFTER_CHUNKS,
        latest_chunks_directory: Path | None = None,
    ) -> None:
        check_idle_horizon(domain, idle_horizon)
        self.latest_chunks_directory = latest_chunks_directory
        self.domain = domain
        self.idle_horizon_ms = int(idle_horizon.total_seconds() * 1000)
        self.state_buckets = state_buckets
        self.compact_after_chunks = compact_after_chunks
        self.output_columns = C.column_names(C.stateful_output_schema(domain))

    def init(self, handle: Any) -> None:
        self.chunks = handle.getListState(HISTORY_CHUNKS_STATE, "chunk binary, token string")
        self.last_write = handle.getValueState(LAST_WRITE_STATE, "token string, chunks int")
        self.latest_chunks = LatestChunks(self.latest_chunks_directory)  # built on the worker: its own directory

    def handleInputRows(  # noqa: N802  # pyspark's name
        self, key: Any, rows: Iterator[pd.DataFrame], timer_values: Any
    ) -> Iterator[pd.DataFrame]:
        entity, bucket = str(key[0]), int(key[1])
        if entity == C.DEAD_LETTER_ENTITY:
            for frame in rows:
                yield self._output(frame.assign(**{C.IS_LATEST: False}))
            return
        features = self.domain.entity(entity)
        events = pd.concat(list(rows), ignore_index=True)
        events[features.key_column] = events[C.ENTITY_ID]  # the key column itself travels in the payload
        watermark_ms = max(int(timer_values.getCurrentWatermarkInMs()), 0)
        late = events[C.EVENT_TIME_MS].to_numpy() < watermark_ms
        on_time = events[~late]
        last_write = self.last_write.get()  # (token, chunk count), or None: read once, both steps need it
        held = self._held(features, entity, bucket, last_write).pruned(
            horizon_ms=watermark_ms - features.retention_ms, forget_before_ms=watermark_ms - self.idle_horizon_ms
        )
        computed, history = compute_window_features(features, held, on_time)
        self._save(features, entity, bucket, last_write, history, on_time)
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

    def close(self) -> None:
        pass

    def _held(
        self, features: EntityFeatureSet, entity: str, bucket: int, last: tuple[Any, ...] | None
    ) -> EntityHistory:
        """The bucket's history as of its last committed write ``last``.

        This worker's copy if it made that write; else the copy plus the one chunk written after it, if another
        worker on this host left that chunk (:mod:`pipelines.spark.latest_chunks`); else the copy plus the chunks
        written after it, if its write is still in the list; else every chunk decoded."""
        if last is None:
            return EntityHistory.empty(features)
        kept = worker_histories().get((entity, bucket))
        if kept is not None and kept[0] == last[0]:
            return kept[1]
        if kept is not None:
            shared = self.latest_chunks.read(f"{entity}-{bucket}")
            if shared is not None and shared.token == last[0] and shared.previous == kept[0]:
                chunk = decode_history(shared.chunk, features, state_buckets=self.state_buckets)
                return EntityHistory.concatenated(features, [kept[1], chunk])
        stored = list(self.chunks.get())
        tokens = [str(row[1]) for row in stored]
        start, base = 0, []
        if kept is not None and kept[0] in tokens:
            start, base = tokens.index(kept[0]) + 1, [kept[1]]
        decoded = [decode_history(bytes(row[0]), features, state_buckets=self.state_buckets) for row in stored[start:]]
        return EntityHistory.concatenated(features, [*base, *decoded])  # the first part, the largest, is not sorted

    def _save(
        self,
        features: EntityFeatureSet,
        entity: str,
        bucket: int,
        last: tuple[Any, ...] | None,
        history: EntityHistory,
        on_time: pd.DataFrame,
    ) -> None:
        """Append the batch's chunk, or replace the list by one chunk of ``history`` when it is long enough.

        Each chunk carries the token of the write that made it; the worker keeps ``history`` under that token.
        """
        if not len(on_time):  # nothing to write: the state, and any copy of it, stay as they are
            if last is not None:
                worker_histories()[(entity, bucket)] = (str(last[0]), history)
            return
        chunk_count = int(last[1]) if last is not None else 0
        token = uuid.uuid4().hex
        group_index = bucket * len(self.domain.entities) + self.domain.entities.index(features)
        batch_chunk = encode_history(events_history(features, on_time), state_buckets=self.state_buckets)
        if chunk_count + 1 >= compaction_point(self.compact_after_chunks, group_index):
            self.chunks.put([(encode_history(history, state_buckets=self.state_buckets), token)])
            chunk_count = 1
        else:
            # appendList, not appendValue: pyspark 4.0.0 sends appendValue's value in one message that the JVM may
            # read only in part when it is large (SPARK-53870; "invalid pickle opcode: 0" on 400,000-event
            # batches here); a list goes as an Arrow stream, read whole, as put's does.
            self.chunks.appendList([(batch_chunk, token)])
            chunk_count += 1
        self.last_write.update((token, chunk_count))
        worker_histories()[(entity, bucket)] = (token, history)
        # Also after a compaction: the previous write's copy plus this batch's events, pruned, is the compacted
        # history (pruning depends only on the watermark, given an idle horizon at least the longest window).
        previous = str(last[0]) if last is not None else ""
        self.latest_chunks.publish(f"{entity}-{bucket}", LatestChunk(token, previous, batch_chunk))

    def _output(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows in the exact output schema order; features of other entity types are null."""
        return rows.reindex(columns=self.output_columns)
