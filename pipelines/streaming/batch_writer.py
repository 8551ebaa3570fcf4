"""The ``foreachBatch`` step: dead letters to Kafka, features to Feast (online and offline), batch records.

Only this step does I/O; it reads the stateful stage's output. The micro-batch is persisted on the executors
and every write runs there (``mapInArrow`` per partition): the driver collects small counts only.

- Dead letters (undecodable, invalid, late) go to the dead-letter topic with the original key and value and
  Kafka Connect's DLQ headers, through :class:`ExactlyOnceSink`: a replayed batch adds nothing.
- Offline: every valid event's features, one Parquet folder per (view, batch id), replaced on replay; and the
  valid events themselves (``events`` dataset), which training joins labels to.
- Online: each entity's latest event of the batch (flagged by the stateful stage, so no shuffle), written by
  the guarded writer, which never lets an older event overwrite a newer one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from pipelines.config import Settings
from pipelines.domains.base import Domain
from pipelines.feast_io.offline import write_offline_batch
from pipelines.feast_io.online import OnlineWriter
from pipelines.kafka.transactional_sink import ExactlyOnceSink, OutgoingRecord
from pipelines.scoring.model_source import ModelSource
from pipelines.scoring.scorer import SCORE_STATS_DDL, ScorePublisher
from pipelines.streaming import columns as C

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

EVENTS_DATASET = "events"
"""Offline dataset of the valid events (Parquet, per batch, like the feature views; not a Feast view)."""
DLQ_STAT_SCHEMA = "partition int, records long, already_delivered boolean"
ONLINE_STAT_SCHEMA = "rows long, entities long, written long, stale long"


@dataclass
class BatchRecord:
    """What one micro-batch did; appended as a JSON line to the job's batch log."""

    batch_id: int
    records_read: int = 0
    valid: int = 0
    dead_lettered: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    failed_expectations: dict[str, int] = field(default_factory=dict)
    online_written: dict[str, int] = field(default_factory=dict)
    online_stale: dict[str, int] = field(default_factory=dict)
    offline_rows: dict[str, int] = field(default_factory=dict)
    dead_letters_published: int = 0
    scored: int = 0
    model_version: int | None = None
    replayed_partitions: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per step; ``compute`` is ingest + decode + validate + entity state (the first action)."""


class BatchWriter:
    """Callable handed to ``writeStream.foreachBatch``."""

    def __init__(
        self,
        settings: Settings,
        domain: Domain,
        online_writer: OnlineWriter,
        dead_letter_sink: ExactlyOnceSink,
        batch_log: Path,
        model_source: ModelSource | None = None,
        score_sink: ExactlyOnceSink | None = None,
    ) -> None:
        self.settings = settings
        self.domain = domain
        self.online_writer = online_writer
        self.dead_letter_sink = dead_letter_sink
        self.batch_log = batch_log
        self.batch_log.parent.mkdir(parents=True, exist_ok=True)
        self.model_source = model_source
        self.score_sink = score_sink
        self.history: list[BatchRecord] = []

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        batch.persist()
        try:
            clock = time.perf_counter()
            record = self._count(batch, batch_id)
            record.stage_seconds["compute"] = round(time.perf_counter() - clock, 3)
            clock = time.perf_counter()
            self._write_dead_letters(batch, batch_id, record)
            record.stage_seconds["dead_letters"] = round(time.perf_counter() - clock, 3)
            for features in self.domain.entities:
                self._write_features(batch, batch_id, features.entity, record)
            clock = time.perf_counter()
            self._write_events(batch, batch_id)
            record.stage_seconds["offline_events"] = round(time.perf_counter() - clock, 3)
            clock = time.perf_counter()
            self._score(batch, batch_id, record)
            record.stage_seconds["scoring"] = round(time.perf_counter() - clock, 3)
        finally:
            batch.unpersist()
        record.seconds = round(time.perf_counter() - started, 3)
        self.history.append(record)
        with self.batch_log.open("a", encoding="utf-8") as log:
            log.write(json.dumps(asdict(record)) + "\n")

    def _count(self, batch: DataFrame, batch_id: int) -> BatchRecord:
        """Conservation: each source record is exactly one of valid, dead-lettered (incl. late)."""
        from pyspark.sql import functions as F

        first_entity = self.domain.entities[0].entity
        one_row_per_record = (F.col(C.ENTITY) == F.lit(first_entity)) | (F.col(C.ENTITY) == C.DEAD_LETTER_ENTITY)
        counts = batch.where(one_row_per_record).groupBy(C.VERDICT, C.REASON).count().collect()
        record = BatchRecord(batch_id=batch_id)
        for row in counts:
            if row[C.VERDICT] == C.OK:
                record.valid += row["count"]
            else:
                record.dead_lettered += row["count"]
                record.dead_letters_by_reason[row[C.REASON]] = row["count"]
        record.records_read = record.valid + record.dead_lettered
        failed = (
            batch.where((F.col(C.ENTITY) == C.DEAD_LETTER_ENTITY) & (F.col(C.REASON) == "invalid"))
            .select(F.explode(F.split(F.col(C.ERROR), "; ")).alias("expectation"))
            .groupBy("expectation")
            .count()
            .collect()
        )
        record.failed_expectations = {row["expectation"]: row["count"] for row in failed}
        return record

    def _score(self, batch: DataFrame, batch_id: int, record: BatchRecord) -> None:
        """Score every valid event with the production model (if any) and publish the scores exactly once.

        Each event's card row and merchant row are joined by source coordinates; the join's hash partitioning is
        the same on a replay (same input, fixed shuffle partitions), so partition ids stay stable for the sink.
        """
        if self.model_source is None or self.score_sink is None:
            return
        model = self.model_source.for_batch()
        if model is None:
            return
        from pyspark.sql import functions as F

        key = [F.col("src_partition"), F.col("src_offset")]
        first, *others = self.domain.entities

        def rows_of(entity: str, *columns: Column) -> DataFrame:
            ok = (F.col(C.ENTITY) == entity) & (F.col(C.VERDICT) == C.OK)
            return batch.where(ok).select(*key, *columns)

        def model_features(names: list[str]) -> list[Column]:
            return [F.col(name) for name in names if name in model.feature_names]

        joined = rows_of(
            first.entity,
            F.col("event_id"),
            F.col(C.ENTITY_ID).alias("card_id"),
            F.unix_millis(F.col(self.domain.event_time_column)).alias("event_time_ms"),
            *model_features(first.feature_names),
        )
        for features in others:
            joined = joined.join(
                rows_of(features.entity, *model_features(features.feature_names)), ["src_partition", "src_offset"]
            )
        publish = ScorePublisher(self.settings, model, self.score_sink, batch_id)
        for row in joined.mapInArrow(publish, SCORE_STATS_DDL).collect():  # type: ignore[arg-type]
            record.scored += row["scored"]
        record.model_version = model.version

    def _write_events(self, batch: DataFrame, batch_id: int) -> None:
        """The valid events themselves (one row each), for training: labels join them by event id to get the
        entity keys and the timestamp of the point-in-time feature lookup."""
        from pyspark.sql import functions as F

        first_entity = self.domain.entities[0].entity
        events = batch.where((F.col(C.ENTITY) == first_entity) & (F.col(C.VERDICT) == C.OK)).select(
            *C.column_names(C.event_schema(self.domain))
        )
        write_offline_batch(events, self.settings, EVENTS_DATASET, batch_id)

    def _write_dead_letters(self, batch: DataFrame, batch_id: int, record: BatchRecord) -> None:
        from pyspark.sql import functions as F

        first_entity = self.domain.entities[0].entity
        dead = batch.where(
            (F.col(C.ENTITY) == C.DEAD_LETTER_ENTITY)
            | ((F.col(C.VERDICT) == C.LATE) & (F.col(C.ENTITY) == F.lit(first_entity)))
        ).select(*C.SOURCE_COLUMNS, C.VERDICT, C.REASON, C.ERROR)
        # Dead letters are few: one transaction per batch costs less than one per partition, and coalescing a
        # deterministic batch is deterministic, so a replay lands on the same (sink, partition 0) marker.
        dead = dead.coalesce(1)
        publish = DeadLetterPublisher(self.dead_letter_sink, self.settings.kafka.topics.dead_letter, batch_id)
        for row in dead.mapInArrow(publish, DLQ_STAT_SCHEMA).collect():  # type: ignore[arg-type]
            record.dead_letters_published += row["records"]
            record.replayed_partitions += int(row["already_delivered"])

    def _write_features(self, batch: DataFrame, batch_id: int, entity: str, record: BatchRecord) -> None:
        from pyspark.sql import functions as F

        features = self.domain.entity(entity)
        offline = batch.where((F.col(C.ENTITY) == entity) & (F.col(C.VERDICT) == C.OK)).select(
            F.col(C.ENTITY_ID).alias(features.key_column), self.domain.event_time_column, *features.feature_names
        )
        clock = time.perf_counter()
        write_offline_batch(offline, self.settings, features.feature_view, batch_id)
        record.stage_seconds[f"offline_{features.feature_view}"] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()
        record.offline_rows[features.feature_view] = record.valid  # one row per valid event in every view

        # The stateful stage flags each entity's latest event of the batch: the online write needs no shuffle.
        latest = batch.where((F.col(C.ENTITY) == entity) & (F.col(C.VERDICT) == C.OK) & F.col(C.IS_LATEST)).select(
            F.col(C.ENTITY_ID).alias(features.key_column), self.domain.event_time_column, *features.feature_names
        )
        write = OnlinePartitionWriter(self.online_writer, features.feature_view)
        written = stale = 0
        for row in latest.mapInArrow(write, ONLINE_STAT_SCHEMA).collect():  # type: ignore[arg-type]
            written += row["written"]
            stale += row["stale"]
        record.online_written[features.feature_view] = written
        record.online_stale[features.feature_view] = stale
        record.stage_seconds[f"online_{features.feature_view}"] = round(time.perf_counter() - clock, 3)


class DeadLetterPublisher:
    """``mapInArrow`` function: one partition's dead letters in one exactly-once transaction."""

    def __init__(self, sink: ExactlyOnceSink, topic: str, batch_id: int) -> None:
        self.sink = sink
        self.topic = topic
        self.batch_id = batch_id

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        records = [
            dead_letter_record(self.topic, row) for batch in batches for row in batch.to_pylist() if batch.num_rows
        ]
        if not records:
            yield pa.RecordBatch.from_pylist([], schema=_DLQ_STATS)
            return
        delivery = self.sink.deliver(self.batch_id, partition, records)
        yield pa.RecordBatch.from_pylist(
            [{"partition": partition, "records": delivery.records, "already_delivered": delivery.already_delivered}],
            schema=_DLQ_STATS,
        )


_DLQ_STATS = pa.schema([("partition", pa.int32()), ("records", pa.int64()), ("already_delivered", pa.bool_())])
_ONLINE_STATS = pa.schema(
    [("rows", pa.int64()), ("entities", pa.int64()), ("written", pa.int64()), ("stale", pa.int64())]
)


def dead_letter_record(topic: str, row: dict[str, object]) -> OutgoingRecord:
    """The original key and value, with Kafka Connect's DLQ headers saying where it came from and why."""
    timestamp = row["src_timestamp"]
    millis = int(timestamp.timestamp() * 1000) if hasattr(timestamp, "timestamp") else -1
    headers = [
        ("__connect.errors.topic", str(row["src_topic"]).encode()),
        ("__connect.errors.partition", str(row["src_partition"]).encode()),
        ("__connect.errors.offset", str(row["src_offset"]).encode()),
        ("__connect.errors.stage", _stage(str(row[C.REASON])).encode()),
        ("__connect.errors.exception.class.name", _exception_class(str(row[C.REASON])).encode()),
        ("__connect.errors.exception.message", str(row[C.ERROR] or "").encode()),
        ("featurestream.reason", str(row[C.REASON]).encode()),
        ("featurestream.source.timestamp", str(millis).encode()),
    ]
    key = row["src_key"]
    value = row["src_value"]
    return OutgoingRecord(
        topic,
        bytes(key) if isinstance(key, bytes | bytearray) else None,
        bytes(value) if isinstance(value, bytes | bytearray) else None,
        headers,
    )


def _stage(reason: str) -> str:
    if reason.startswith("undecodable"):
        return "VALUE_CONVERTER"
    if reason == C.LATE:
        return "WATERMARK"
    return "VALIDATION"


def _exception_class(reason: str) -> str:
    if reason.startswith("undecodable"):
        return "pipelines.serde.errors.DecodeError"
    if reason == C.LATE:
        return "featurestream.LateEvent"
    return "great_expectations.ExpectationFailed"


class OnlinePartitionWriter:
    """``mapInArrow`` function: one partition's latest-per-entity rows through the guarded online writer."""

    def __init__(self, writer: OnlineWriter, view: str) -> None:
        self.writer = writer
        self.view = view

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        materialised = [batch for batch in batches if batch.num_rows]
        if not materialised:
            yield pa.RecordBatch.from_pylist([], schema=_ONLINE_STATS)
            return
        stats = self.writer.write_batches(self.view, materialised)
        yield pa.RecordBatch.from_pylist(
            [{"rows": stats.rows, "entities": stats.entities, "written": stats.written, "stale": stats.stale}],
            schema=_ONLINE_STATS,
        )
