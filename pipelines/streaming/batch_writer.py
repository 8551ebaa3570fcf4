"""The ``foreachBatch`` step: one Spark job per micro-batch writes everything, then scores.

Only this step does I/O; it reads the stateful stage's output once. Every write runs on the executors
(:class:`~pipelines.streaming.partition_sinks.PartitionSinks` in ``mapInArrow``): dead letters to Kafka exactly
once, offline Parquet per (view, batch, partition), each entity's latest event to the guarded online store. The
driver collects one small statistics row per partition.

When a production model is registered, the write pass also emits each valid (event, entity) row's features, slim;
in the same job they are shuffled by event, paired and scored, and the scores published exactly once
(:class:`~pipelines.streaming.scoring_pass.ScoringPass`).
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
from pipelines.scoring.scorer import ScorePublisher
from pipelines.streaming.partition_sinks import STATS, PartitionSinks, PartitionStats, output_schema
from pipelines.streaming.scoring_pass import OUTPUT_DDL, PARTITION_KEY, ROLE, SECONDS, ScoringModelRole, ScoringPass

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row

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
    """Driver wall time of the batch, in parts that do not overlap: ``build_plan`` (the model's lookup and the
    passes' DataFrames built through Py4J before the job: a fixed cost every micro-batch pays), then the batch's
    one Spark job, ``features_and_writes`` (read, decode, validate, entity state and every write) or, with a
    model, ``features_writes_and_scoring`` (the same, then shuffle, predict, publish)."""
    sink_seconds: dict[str, float] = field(default_factory=dict)
    """Executor wall time per sink, summed over partitions; with a model also ``predict`` (inside XGBoost) and
    ``scoring_pass`` (the scoring pass's whole time, shuffle read included)."""
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
        passed = batch.mapInArrow(sinks, output_schema(self.domain))  # type: ignore[arg-type]
        result = passed if model is None else self._scoring_pass(passed, batch_id, model, challenger)
        planned = time.perf_counter()
        record.stage_seconds["build_plan"] = round(planned - started, 4)
        observations: list[PartitionObservations] = []
        for row in result.collect():  # statistics rows, then (scoring) one row per partition and model
            if row[STATS] is not None:
                record.add(PartitionStats.from_json(row[STATS]))
            else:
                self._add_scores(record, row, observations)
        if model is not None:
            record.model_version = model.version
            record.challenger_version = challenger.version if challenger is not None else None
        job = "features_and_writes" if model is None else "features_writes_and_scoring"
        record.stage_seconds[job] = round(time.perf_counter() - planned, 3)
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

    def _scoring_pass(
        self, passed: DataFrame, batch_id: int, model: ScoringModel, challenger: ScoringModel | None
    ) -> DataFrame:
        """The write pass's output shuffled by event and scored (:class:`ScoringPass`), in the same Spark job.

        The shuffle's hash partitioning is the same on a replay (same rows, fixed partition count), so the
        partition ids that key the exactly-once transactions name the same events again.
        """
        from pyspark.sql import functions as F

        assert self.score_sink is not None
        models = [ScoringModelRole("production", ScorePublisher(self.settings, model, self.score_sink, batch_id))]
        if challenger is not None and self.shadow_sink is not None:
            topic = self.settings.kafka.topics.shadow_scores
            shadow = ScorePublisher(self.settings, challenger, self.shadow_sink, batch_id, topic)
            models.append(ScoringModelRole("challenger", shadow))
        by_event = passed.repartition(self.settings.spark.shuffle_partitions, *[F.col(c) for c in PARTITION_KEY])
        return by_event.mapInArrow(ScoringPass(self.domain, models), OUTPUT_DDL)  # type: ignore[arg-type]

    @staticmethod
    def _add_scores(record: BatchRecord, row: Row, observations: list[PartitionObservations]) -> None:
        """Fold one (partition, model) row of the scoring pass into the batch record."""
        from pipelines.observability.batch_observations import PartitionObservations

        if row[ROLE] == "challenger":
            record.shadow_scored += row["scored"]
            return
        record.scored += row["scored"]
        if row["observations"]:
            observations.append(PartitionObservations.from_json(row["observations"]))
        for sink, seconds in (("predict", row["predict_seconds"]), ("scoring_pass", row[SECONDS])):
            record.sink_seconds[sink] = round(record.sink_seconds.get(sink, 0.0) + seconds, 3)
