"""Feed :class:`LiveQuality` from Kafka: the scores topic and the labels topic, read_committed.

The scores are computed on executors and the labels are not part of the stream at all, so the driver follows
both topics with one confluent-kafka consumer and joins them in :class:`LiveQuality`. Reading the scores back
costs a decode per score on the driver; it reads only what the job already published (committed
transactions), so the quality it reports is that of what consumers really got.

The streaming job lets the feed follow both topics in a background thread (:meth:`QualityFeed.follow`): reading
and decoding a batch's scores on the driver took ~80 ms per micro-batch (py-spy at 5,000 events/s) when it was
done inside the batch, and the next batch waited for it. :meth:`QualityFeed.snapshot` gives the quality as read
so far; without a following thread it polls first (what is available now, without waiting).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from pipelines.config import Settings
from pipelines.kafka.client_config import consumer_config
from pipelines.observability.quality import LiveQuality, QualitySnapshot
from pipelines.serde.decoder import RecordDecoder

log = logging.getLogger(__name__)


class _Message(Protocol):
    def error(self) -> Any: ...

    def topic(self) -> str | None: ...

    def value(self) -> bytes | None: ...


class _Consumer(Protocol):
    def subscribe(self, topics: list[str]) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...

    def assignment(self) -> list[Any]: ...

    def position(self, partitions: list[Any]) -> list[Any]: ...

    def get_watermark_offsets(self, partition: Any, timeout: float = ...) -> tuple[int, int]: ...

    def seek(self, partition: Any) -> None: ...

    def close(self) -> None: ...


class QualityFeed:
    """Scores and labels from their topics into a :class:`LiveQuality`."""

    def __init__(
        self,
        settings: Settings,
        quality: LiveQuality,
        *,
        group_id: str | None = None,
        consumer: _Consumer | None = None,
        scores_decoder: RecordDecoder | None = None,
        labels_decoder: RecordDecoder | None = None,
    ) -> None:
        self.quality = quality
        self.scores_topic = settings.kafka.topics.scores
        self.labels_topic = settings.kafka.topics.labels
        self.label_column = settings.models.label_column
        if consumer is None:
            from confluent_kafka import Consumer

            group = group_id or f"featurestream-quality-{settings.stream.query_name}"
            # Committing as it goes: a restarted job resumes where it stopped instead of re-reading history
            # (what it had pending in memory is lost; see LiveQuality's note on bounds).
            consumer = Consumer({**consumer_config(settings, group), "enable.auto.commit": True})
        self._consumer = consumer
        self._consumer.subscribe([self.scores_topic, self.labels_topic])
        self._scores = scores_decoder or RecordDecoder.from_settings("scores", settings)
        self._labels = labels_decoder or RecordDecoder.from_settings(settings.models.label_subject, settings)
        self.undecodable = 0
        self.consumed = 0
        self.skipped = 0
        self._lock = threading.Lock()  # the following thread applies records while the batch takes snapshots
        self._stopping = threading.Event()
        self._follower: threading.Thread | None = None

    def follow(self, max_per_s: int, wait_s: float = 0.25, max_lag_s: float = 60.0) -> None:
        """Poll in a daemon thread from now until :meth:`close`, reading at most ``max_per_s`` records a second.

        The bound keeps the driver's CPU for the stream: at 23,000 events/s, reading every score back took 7 µs
        of driver CPU per event, 8% of the job's throughput on 2 cores (benchmarks/stream_throughput.py). A stream
        faster than that would leave the feed ever further behind; once it is more than ``max_lag_s`` seconds of
        reading behind, it skips ahead (:meth:`skip_ahead`), so the quality is judged on a sample of the scores
        and labels, not on ever older ones.
        """
        if self._follower is not None:
            return
        args = (max(1, int(max_per_s * wait_s)), wait_s, int(max_per_s * max_lag_s))
        self._follower = threading.Thread(target=self._follow, args=args, name="quality-feed", daemon=True)
        self._follower.start()

    def _follow(self, per_round: int, wait_s: float, max_lag: int) -> None:
        failing = False
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                before = self.consumed
                self.poll(max_messages=per_round, timeout_s=wait_s)
                spent = self.consumed - before >= per_round
                if spent:
                    self.skip_ahead(max_lag)
                failing = False
            except Exception:  # the quality feed must not stop, nor stop the stream
                if not failing:  # once per run of failures, not every round
                    log.exception("live quality: polling scores and labels failed")
                failing, spent = True, True
            if spent:  # the round's budget is spent: the rest waits for the next round
                self._stopping.wait(max(0.0, wait_s - (time.monotonic() - started)))

    def skip_ahead(self, max_lag: int) -> int:
        """Move past all but the newest ``max_lag`` records of the assigned partitions (shared evenly); returns
        how many records were skipped. Skipping is blind to scores and labels, so the pairs still read are an
        unbiased sample; a label whose score was skipped waits unmatched until it is evicted."""
        from confluent_kafka import TopicPartition

        assigned = self._consumer.assignment()
        if not assigned:
            return 0
        keep = max(1, max_lag // len(assigned))
        skipped = 0
        for position in self._consumer.position(assigned):
            if position.offset < 0:
                continue
            _, high = self._consumer.get_watermark_offsets(position, timeout=5.0)
            if high - position.offset > keep:
                skipped += high - keep - position.offset
                self._consumer.seek(TopicPartition(position.topic, position.partition, high - keep))
        if skipped:
            self.skipped += skipped
            log.info("live quality: more than %d records behind, skipped %d (sampling the stream)", max_lag, skipped)
        return skipped

    def snapshot(self) -> QualitySnapshot:
        """The live quality of what was read so far (polling first when no thread follows the topics)."""
        if self._follower is None:
            self.poll()
        with self._lock:
            return self.quality.snapshot()

    def poll(self, max_messages: int = 50_000, timeout_s: float = 0.0) -> int:
        """Apply what is available now (up to ``max_messages``); returns the number of records applied."""
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        self.consumed += len(messages)
        score_ids: list[str] = []
        scores: list[float] = []
        alerts: list[bool] = []
        label_ids: list[str] = []
        labels: list[bool] = []
        for message in messages:
            if message.error() is not None:
                log.warning("quality feed: consumer error %s", message.error())
                continue
            topic = message.topic()
            decoder = self._scores if topic == self.scores_topic else self._labels
            record = decoder.try_decode(message.value())
            if not isinstance(record, dict):
                self.undecodable += 1
                continue
            if topic == self.scores_topic:
                score_ids.append(str(record["event_id"]))
                scores.append(float(record["score"]))
                alerts.append(bool(record["is_alert"]))
            else:
                label_ids.append(str(record["event_id"]))
                labels.append(bool(record[self.label_column]))
        with self._lock:
            self.quality.add_labels(label_ids, labels)
            self.quality.add_scores(score_ids, scores, alerts)
        return len(score_ids) + len(label_ids)

    def close(self) -> None:
        self._stopping.set()
        if self._follower is not None:
            self._follower.join()
        self._consumer.close()
