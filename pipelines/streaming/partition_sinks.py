"""Everything one Spark partition of a micro-batch writes, done in one pass on the executor that holds it.

The stateful stage's output is consumed exactly once, by :class:`PartitionSinks` in ``mapInArrow``: no cached
copy of the wide batch and no Spark job per sink (measured: caching the batch and scanning it once per sink
cost more than computing it). Per partition it

- counts what became of each source record (valid, dead-lettered by reason, failed expectations),
- publishes the dead letters (undecodable, invalid, late) with Kafka Connect's DLQ headers in one
  exactly-once transaction keyed by (batch id, partition),
- writes the offline Parquet of every feature view and of the valid events (one file per view, batch and
  partition, replaced on replay),
- writes each entity's latest event of the partition to the online store through the guarded writer,

and returns one statistics row, plus (when a model scores the batch) the slim rows the scorer joins.

A replayed batch lands in the same partitions (Spark pins a stateful query's shuffle partitions in the
checkpoint, and the state it resumes from is the same), so every sink here is idempotent by (batch, partition).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Settings
from pipelines.domains.base import Domain
from pipelines.feast_io.offline import write_offline_part
from pipelines.feast_io.online import OnlineWriter
from pipelines.kafka.transactional_sink import ExactlyOnceSink, OutgoingRecord
from pipelines.spark.arrow_batches import arrow_schema
from pipelines.streaming import columns as C
from pipelines.transforms.windows import EntityFeatureSet

EVENTS_DATASET = "events"
"""Offline dataset of the valid events (Parquet, per batch, like the feature views; not a Feast view)."""
STATS = "partition_stats"
"""The output column carrying a partition's :class:`PartitionStats` as JSON (null on scoring rows)."""
INVALID_REASON = "invalid"


@dataclass
class PartitionStats:
    """What one partition's pass did; the driver sums these into the batch's record."""

    partition: int
    valid: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    failed_expectations: dict[str, int] = field(default_factory=dict)
    dead_letters_published: int = 0
    dead_letters_already_delivered: bool = False
    online_written: dict[str, int] = field(default_factory=dict)
    online_stale: dict[str, int] = field(default_factory=dict)
    offline_rows: dict[str, int] = field(default_factory=dict)
    newest_event_ms: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Executor wall time per sink in this partition."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PartitionStats:
        return cls(**json.loads(text))


def scoring_columns(domain: Domain) -> list[str]:
    """The slim columns the scorer needs per (event, entity) row: the join key, who and when, the features."""
    return ["src_partition", "src_offset", C.ENTITY, "event_id", C.ENTITY_ID, C.EVENT_TIME_MS, *domain.feature_names]


def output_schema(domain: Domain) -> str:
    """DDL of the pass's output: a stats row per partition, and the scoring rows (stats null)."""
    types = dict(
        (name, kind) for name, kind in (part.strip().split(" ", 1) for part in C.feature_schema(domain).split(","))
    )
    scoring = [
        "src_partition int",
        "src_offset long",
        f"{C.ENTITY} string",
        "event_id string",
        f"{C.ENTITY_ID} string",
        f"{C.EVENT_TIME_MS} long",
        *[f"{name} {types[name]}" for name in domain.feature_names],
    ]
    return ", ".join([f"{STATS} string", *scoring])


class PartitionSinks:
    """The ``mapInArrow`` function; picklable (settings, declarations, writer and sink objects only)."""

    def __init__(
        self,
        settings: Settings,
        domain: Domain,
        online_writer: OnlineWriter,
        dead_letter_sink: ExactlyOnceSink,
        batch_id: int,
        *,
        emit_scoring_rows: bool,
    ) -> None:
        self.settings = settings
        self.domain = domain
        self.online_writer = online_writer
        self.dead_letter_sink = dead_letter_sink
        self.batch_id = batch_id
        self.emit_scoring_rows = emit_scoring_rows
        self.schema = arrow_schema(output_schema(domain))

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        materialised = [batch for batch in batches if batch.num_rows]
        stats = PartitionStats(partition)
        if materialised:
            table = pa.Table.from_batches(materialised)
            self.write(table, stats)
            if self.emit_scoring_rows:
                yield from self._scoring_rows(table)
        yield pa.RecordBatch.from_pylist([{STATS: stats.to_json()}], schema=self.schema)

    def write(self, table: pa.Table, stats: PartitionStats) -> None:
        """Count, dead-letter and write one partition's rows (pure I/O on what the stateful stage computed)."""
        first = self.domain.entities[0].entity
        entity, verdict = table.column(C.ENTITY), table.column(C.VERDICT)
        ok = pc.equal(verdict, C.OK)
        dead_row = pc.equal(entity, C.DEAD_LETTER_ENTITY)
        first_entity = pc.equal(entity, first)
        dead = pc.or_(dead_row, pc.and_(first_entity, pc.equal(verdict, C.LATE)))
        self._count(table, pc.and_(first_entity, ok), dead, stats)
        self._timed(stats, "dead_letters", lambda: self._dead_letters(table.filter(dead), stats))
        for features in self.domain.entities:
            self._write_view(table.filter(pc.and_(pc.equal(entity, features.entity), ok)), features, stats)
        events = table.filter(pc.and_(first_entity, ok)).select(C.column_names(C.event_schema(self.domain)))
        self._timed(stats, f"offline_{EVENTS_DATASET}", lambda: self._offline(events, EVENTS_DATASET, stats))

    def _count(self, table: pa.Table, valid: pa.ChunkedArray, dead: pa.ChunkedArray, stats: PartitionStats) -> None:
        """Conservation: each source record is exactly one of valid (its first entity's row) or dead-lettered."""
        stats.valid = int(pc.sum(valid).as_py() or 0)
        dead_rows = table.filter(dead).select([C.REASON, C.ERROR])
        stats.dead_letters_by_reason = dict(Counter(dead_rows.column(C.REASON).to_pylist()))
        invalid = dead_rows.filter(pc.equal(dead_rows.column(C.REASON), INVALID_REASON)).column(C.ERROR)
        stats.failed_expectations = dict(
            Counter(expectation for error in invalid.to_pylist() if error for expectation in error.split("; "))
        )

    def _dead_letters(self, dead: pa.Table, stats: PartitionStats) -> None:
        if not dead.num_rows:
            return
        topic = self.settings.kafka.topics.dead_letter
        rows = dead.select([*C.SOURCE_COLUMNS, C.REASON, C.ERROR]).to_pylist()
        delivery = self.dead_letter_sink.deliver(
            self.batch_id, stats.partition, [dead_letter_record(topic, row) for row in rows]
        )
        stats.dead_letters_published = delivery.records
        stats.dead_letters_already_delivered = delivery.already_delivered

    def _write_view(self, rows: pa.Table, features: EntityFeatureSet, stats: PartitionStats) -> None:
        view = features.feature_view
        columns = [C.ENTITY_ID, self.domain.event_time_column, *features.feature_names]
        names = [features.key_column, self.domain.event_time_column, *features.feature_names]
        offline = rows.select(columns).rename_columns(names)
        self._timed(stats, f"offline_{view}", lambda: self._offline(offline, view, stats))
        # The stateful stage flags each entity's latest event of the batch: the online write needs no shuffle.
        latest = offline.filter(rows.column(C.IS_LATEST))
        if latest.num_rows:
            newest = pc.max(latest.column(self.domain.event_time_column)).value  # microseconds since the epoch
            stats.newest_event_ms[view] = int(newest // 1000)

        def online() -> None:
            written = self.online_writer.write(view, latest) if latest.num_rows else None
            stats.online_written[view] = written.written if written else 0
            stats.online_stale[view] = written.stale if written else 0

        self._timed(stats, f"online_{view}", online)

    def _offline(self, rows: pa.Table, dataset: str, stats: PartitionStats) -> None:
        stats.offline_rows[dataset] = rows.num_rows
        if rows.num_rows:
            write_offline_part(rows, self.settings, dataset, self.batch_id, stats.partition)

    def _scoring_rows(self, table: pa.Table) -> Iterator[pa.RecordBatch]:
        entity_rows = table.filter(pc.equal(table.column(C.VERDICT), C.OK))
        if not entity_rows.num_rows:
            return
        event_time = entity_rows.column(self.domain.event_time_column)
        millis = pc.cast(pc.cast(event_time, pa.timestamp("ms", tz="UTC"), safe=False), pa.int64())
        slim = (
            entity_rows.append_column(C.EVENT_TIME_MS, millis)
            .select(scoring_columns(self.domain))
            .append_column(STATS, pa.nulls(entity_rows.num_rows, pa.string()))
        )
        yield from slim.select(self.schema.names).cast(self.schema).to_batches()

    @staticmethod
    def _timed(stats: PartitionStats, name: str, step: Callable[[], None]) -> None:
        clock = time.perf_counter()
        step()
        stats.seconds[name] = round(time.perf_counter() - clock, 4)


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
