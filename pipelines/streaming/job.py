"""Wire the streaming feature job: ingest (Kafka) -> transform (decode, validate, entity state) -> write.

The three steps stay visible here; the logic lives in the stage modules. ``jobs/stream.py`` is the thin
spark-submit entry point that calls :func:`start_feature_stream`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.feast_io.writers import online_writer
from pipelines.kafka.topics import admin_client, describe_topics, ensure_topics
from pipelines.kafka.transactional_sink import ExactlyOnceSink
from pipelines.models.registry import CHALLENGER
from pipelines.observability.observer import StreamObserver
from pipelines.scoring.model_source import ModelSource
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.kafka_source import StartingOffsets, read_kafka_stream
from pipelines.spark.session import checkpoint_dir
from pipelines.streaming.batch_writer import BatchWriter
from pipelines.streaming.checkpoint_layout import check_state_layout
from pipelines.streaming.decode_validate import decode_and_validate
from pipelines.streaming.entity_state import check_idle_horizon, compute_entity_features, explode_entities
from pipelines.validation.suite import read_suite_json

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

JOB_NAME = "stream"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningStream:
    query: StreamingQuery
    writer: BatchWriter
    checkpoint: Path
    batch_log: Path
    observer: StreamObserver

    def close(self) -> None:
        """Stop the metrics endpoint and the live-quality consumer (after the query has ended)."""
        self.observer.close()


def start_observer(spark: SparkSession, settings: Settings, batch_log: Path) -> StreamObserver:
    """Metrics (served on ``observability.metrics_port``), drift, live quality and the run log of the query.

    A metrics port already taken (another job on this machine) does not stop the stream: it runs without the
    endpoint and says so once in the log; the run log and everything else still work.
    """
    try:
        observer = StreamObserver.from_settings(settings, run_log=batch_log)
    except OSError as exc:
        observe = settings.observability
        log.warning(
            "metrics endpoint %s:%s unavailable (%s): running without it; set observability.metrics_port",
            observe.metrics_host,
            observe.metrics_port,
            exc,
        )
        observer = StreamObserver.from_settings(settings, run_log=batch_log, serve=False)
    spark.streams.addListener(observer.listener())
    return observer


def sink_identity(checkpoint: Path) -> str:
    """An id bound to the checkpoint: deleting the checkpoint (to reprocess) also starts fresh delivery markers.

    Kafka keeps the exactly-once markers of a sink; if a new checkpoint reused an old sink's name, its batch
    ids would collide with batches already delivered and its output would be skipped.
    """
    marker = checkpoint / "featurestream-sink-id"
    if not marker.is_file():
        checkpoint.mkdir(parents=True, exist_ok=True)
        marker.write_text(uuid.uuid4().hex[:12])
    return marker.read_text().strip()


def read_transactions(spark: SparkSession, settings: Settings, starting_offsets: StartingOffsets) -> DataFrame:
    """The transactions topic as the job reads it: ``stream.read_tasks`` tasks per micro-batch, one per core of
    the Spark application by default (each task has a fixed cost, and equal tasks keep every core busy)."""
    stream, topic = settings.stream, settings.kafka.topics.transactions
    described = describe_topics(admin_client(settings), [topic])
    return read_kafka_stream(
        spark,
        settings,
        topic,
        starting_offsets=starting_offsets,
        max_offsets_per_trigger=stream.max_offsets_per_trigger,
        read_tasks=stream.read_tasks or spark.sparkContext.defaultParallelism,
        topic_partitions=described[0].partitions if described else None,
    )


def start_feature_stream(spark: SparkSession, settings: Settings, *, available_now: bool = False) -> RunningStream:
    """Start the query; the caller awaits it (availableNow ends by itself once the topic is drained)."""
    stream = settings.stream
    domain = get_domain(stream.domain)
    topics = settings.kafka.topics
    checkpoint = checkpoint_dir(settings, JOB_NAME, stream.query_name)
    check_state_layout(checkpoint, stream.state_buckets)  # configuration errors before touching Kafka
    check_idle_horizon(domain, timedelta(days=stream.idle_entity_days))
    ensure_topics(
        admin_client(settings),
        [topics.transactions, topics.dead_letter, topics.scores, topics.shadow_scores],
        partitions=settings.kafka.partitions,
        replication_factor=settings.kafka.replication_factor,
    )
    batch_log = settings.stack.state_dir / "runs" / stream.query_name / "batches.jsonl"

    raw = read_transactions(spark, settings, stream.starting_offsets)
    decoded = decode_and_validate(
        raw, domain, RecordDecoder.from_settings(domain.event_subject, settings), read_suite_json()
    )
    exploded = explode_entities(decoded, domain, stream.watermark_delay, stream.state_buckets)
    features = compute_entity_features(exploded, domain, timedelta(days=stream.idle_entity_days), stream.state_buckets)

    identity = sink_identity(checkpoint)
    dead_letters = ExactlyOnceSink(settings, f"{stream.query_name}-{identity}-dlq", topics.dead_letter)
    scores = ExactlyOnceSink(settings, f"{stream.query_name}-{identity}-scores", topics.scores)
    shadow_scores = ExactlyOnceSink(settings, f"{stream.query_name}-{identity}-shadow", topics.shadow_scores)
    model_source = ModelSource(settings, domain)
    model_source.for_batch()  # a production model needing features the stream lacks fails here, at start
    writer = BatchWriter(
        settings,
        domain,
        online_writer(settings),
        dead_letters,
        batch_log,
        model_source,
        scores,
        challenger_source=ModelSource(settings, domain, CHALLENGER),
        shadow_sink=shadow_scores,
        observer=(observer := start_observer(spark, settings, batch_log)),
    )
    trigger = {"availableNow": True} if available_now else {"processingTime": stream.trigger_interval}
    try:
        query = (
            features.writeStream.foreachBatch(writer)
            .queryName(stream.query_name)
            .option("checkpointLocation", str(checkpoint))
            .trigger(**trigger)
            .start()
        )
    except BaseException:
        observer.close()  # its metrics endpoint and quality-feed thread must not outlive a query that never ran
        raise
    log.info("started query %s (checkpoint %s)", stream.query_name, checkpoint)
    return RunningStream(query, writer, checkpoint, batch_log, observer)
