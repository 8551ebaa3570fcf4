"""The ``foreachBatch`` step: one pass over the micro-batch writes everything, then the scores.

Only this step does I/O; it reads the stateful stage's output once. Every write runs on the executors
(:class:`~pipelines.streaming.partition_sinks.PartitionSinks` in ``mapInArrow``): dead letters to Kafka exactly
once, offline Parquet per (view, batch, partition), each entity's latest event to the guarded online store. The
driver collects one small statistics row per partition.

When a production model is registered, the pass also emits each valid (event, entity) row's features, slim; the
scorer joins an event's card and merchant rows and publishes its score exactly once
(:class:`~pipelines.scoring.scorer.ScorePublisher`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import Settings
from pipelines.domains.base import Domain
from pipelines.feast_io.online import OnlineWriter
from pipelines.kafka.transactional_sink import ExactlyOnceSink
from pipelines.scoring.model_source import ModelSource, ScoringModel
from pipelines.scoring.scorer import SCORE_STATS_DDL, ScorePublisher
from pipelines.streaming import columns as C
from pipelines.streaming.partition_sinks import STATS, PartitionSinks, PartitionStats, output_schema

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pipelines.observability.batch_observations import PartitionObservations
    from pipelines.observability.observer import StreamObserver


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
    shadow_scored: int = 0
    challenger_version: int | None = None
    replayed_partitions: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Driver wall time: ``features_and_writes`` (read, decode, validate, entity state and every write, one Spark
    job) and ``scoring`` (join, predict, publish)."""
    sink_seconds: dict[str, float] = field(default_factory=dict)
    """Executor wall time per sink, summed over partitions (runs inside ``features_and_writes``)."""
    newest_event_ms: dict[str, int] = field(default_factory=dict)
    """Per feature view, the newest event time written (epoch ms): the freshness of the online store."""

    def add(self, stats: PartitionStats) -> None:
        """Fold one partition's statistics in."""
        self.valid += stats.valid
        for reason, count in stats.dead_letters_by_reason.items():
            self.dead_letters_by_reason[reason] = self.dead_letters_by_reason.get(reason, 0) + count
            self.dead_lettered += count
        for expectation, count in stats.failed_expectations.items():
            self.failed_expectations[expectation] = self.failed_expectations.get(expectation, 0) + count
        self.records_read = self.valid + self.dead_lettered
        self.dead_letters_published += stats.dead_letters_published
        self.replayed_partitions += int(stats.dead_letters_already_delivered)
        for target, source in (
            (self.online_written, stats.online_written),
            (self.online_stale, stats.online_stale),
            (self.offline_rows, stats.offline_rows),
        ):
            for name, count in source.items():
                target[name] = target.get(name, 0) + count
        for view, newest in stats.newest_event_ms.items():
            self.newest_event_ms[view] = max(newest, self.newest_event_ms.get(view, newest))
        for sink, seconds in stats.seconds.items():
            self.sink_seconds[sink] = round(self.sink_seconds.get(sink, 0.0) + seconds, 3)


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
        challenger_source: ModelSource | None = None,
        shadow_sink: ExactlyOnceSink | None = None,
        observer: StreamObserver | None = None,
    ) -> None:
        self.settings = settings
        self.domain = domain
        self.online_writer = online_writer
        self.dead_letter_sink = dead_letter_sink
        self.batch_log = batch_log
        self.batch_log.parent.mkdir(parents=True, exist_ok=True)
        self.model_source = model_source
        self.score_sink = score_sink
        self.challenger_source = challenger_source
        self.shadow_sink = shadow_sink
        self.observer = observer
        self.history: list[BatchRecord] = []

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        record = BatchRecord(batch_id=batch_id)
        model = self.model_source.for_batch() if self.model_source is not None and self.score_sink else None
        shadowing = model is not None and self.challenger_source is not None and self.shadow_sink is not None
        challenger = self.challenger_source.for_batch() if shadowing and self.challenger_source else None
        sinks = PartitionSinks(
            self.settings,
            self.domain,
            self.online_writer,
            self.dead_letter_sink,
            batch_id,
            emit_scoring_rows=model is not None,
        )
        from pyspark.sql import functions as F

        passed = batch.mapInArrow(sinks, output_schema(self.domain))  # type: ignore[arg-type]
        if model is not None:
            passed = passed.persist()  # slim rows only: the scorer reads them, the writes must not run twice
        observations: list[PartitionObservations] = []
        try:
            clock = time.perf_counter()
            for row in passed.where(F.col(STATS).isNotNull()).select(STATS).collect():
                record.add(PartitionStats.from_json(row[STATS]))
            record.stage_seconds["features_and_writes"] = round(time.perf_counter() - clock, 3)
            if model is not None:
                clock = time.perf_counter()
                rows = passed.where(F.col(STATS).isNull())
                observations = self._score(rows, batch_id, model, challenger, record)
                record.stage_seconds["scoring"] = round(time.perf_counter() - clock, 3)
        finally:
            if model is not None:
                passed.unpersist()
        record.seconds = round(time.perf_counter() - started, 3)
        self.history.append(record)
        self._log(record, model, observations)

    def _log(self, record: BatchRecord, model: ScoringModel | None, parts: list[PartitionObservations]) -> None:
        """The batch's line in the run log, through the observer (metrics, drift, live quality) if there is one."""
        if self.observer is None:
            with self.batch_log.open("a", encoding="utf-8") as log:
                log.write(json.dumps(asdict(record)) + "\n")
            return
        from pipelines.models.registry import ModelRegistry
        from pipelines.observability.batch_observations import merge_observations

        if model is not None:
            home = ModelRegistry.from_settings(self.settings).version(model.version).model_path.parent
            self.observer.set_model(model.name, model.version, home)
        else:
            self.observer.set_model(None, None)
        for view, newest_ms in record.newest_event_ms.items():
            self.observer.metrics.set_feature_freshness(view, newest_ms / 1000)
        self.observer.after_batch(record, merge_observations(parts) if parts else None)

    def _score(
        self,
        rows: DataFrame,
        batch_id: int,
        model: ScoringModel,
        challenger: ScoringModel | None,
        record: BatchRecord,
    ) -> list[PartitionObservations]:
        """Score every valid event with the production model and publish the scores exactly once; the same
        for the challenger (shadow) model, if one is set, to its own topic.

        Each event's card row and merchant row are joined by source coordinates; the join's hash partitioning is
        the same on a replay (same input, fixed shuffle partitions), so partition ids stay stable for the sink.
        """
        from pyspark.sql import functions as F

        assert self.score_sink is not None
        key = [F.col("src_partition"), F.col("src_offset")]
        first, *others = self.domain.entities

        def rows_of(entity: str, *columns: Column) -> DataFrame:
            return rows.where(F.col(C.ENTITY) == entity).select(*key, *columns)

        wanted = set(model.feature_names) | set(challenger.feature_names if challenger else ())

        def model_features(names: list[str]) -> list[Column]:
            return [F.col(name) for name in names if name in wanted]

        joined = rows_of(
            first.entity,
            F.col("event_id"),
            F.col(C.ENTITY_ID).alias("card_id"),
            F.col(C.EVENT_TIME_MS).alias("event_time_ms"),
            *model_features(first.feature_names),
        )
        for features in others:
            joined = joined.join(
                rows_of(features.entity, *model_features(features.feature_names)), ["src_partition", "src_offset"]
            )
        if challenger is not None:
            joined = joined.persist()
        try:
            from pipelines.observability.batch_observations import PartitionObservations

            observations = []
            publish = ScorePublisher(self.settings, model, self.score_sink, batch_id)
            for row in joined.mapInArrow(publish, SCORE_STATS_DDL).collect():  # type: ignore[arg-type]
                record.scored += row["scored"]
                if row["observations"]:
                    observations.append(PartitionObservations.from_json(row["observations"]))
                predict = record.sink_seconds.get("predict", 0.0) + row["predict_seconds"]
                record.sink_seconds["predict"] = round(predict, 3)
            record.model_version = model.version
            if challenger is not None and self.shadow_sink is not None:
                topic = self.settings.kafka.topics.shadow_scores
                shadow = ScorePublisher(self.settings, challenger, self.shadow_sink, batch_id, topic)
                for row in joined.mapInArrow(shadow, SCORE_STATS_DDL).collect():  # type: ignore[arg-type]
                    record.shadow_scored += row["scored"]
                record.challenger_version = challenger.version
        finally:
            if challenger is not None:
                joined.unpersist()
        return observations
