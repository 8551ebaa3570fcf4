"""Live quality from delayed labels: hand-computed precision/recall/ROC-AUC, the bounded join, the Kafka feed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import TopicPartition

from pipelines.config import Settings
from pipelines.observability.quality import LiveQuality, quality_from_frames, quality_of
from pipelines.observability.quality_feed import QualityFeed
from pipelines.serde.encoder import make_encoder

# e1..e6: score, published alert, label. Alerts e1 e2 e3 (2 of them fraud); frauds e1 e3 e4.
EVENTS = [
    ("e1", 0.9, True, True),
    ("e2", 0.8, True, False),
    ("e3", 0.7, True, True),
    ("e4", 0.4, False, True),
    ("e5", 0.2, False, False),
    ("e6", 0.1, False, False),
]
# ROC-AUC by hand: positives .9 .7 .4 vs negatives .8 .2 .1 -> .9 wins 3, .7 wins 2, .4 wins 2 = 7 of 9 pairs.
EXPECTED = {"labelled": 6, "positives": 3, "alerts": 3, "true_positives": 2}


def check(snapshot: Any) -> None:
    assert {k: getattr(snapshot, k) for k in EXPECTED} == EXPECTED
    assert snapshot.precision == pytest.approx(2 / 3)
    assert snapshot.recall == pytest.approx(2 / 3)
    assert snapshot.roc_auc == pytest.approx(7 / 9)


def test_quality_of_matches_hand_computed_values() -> None:
    _, scores, alerts, labels = zip(*EVENTS, strict=True)
    check(quality_of(labels, scores, alerts))
    empty = quality_of([], [], [])
    assert (empty.labelled, empty.precision, empty.recall, empty.roc_auc) == (0, None, None, None)
    one_class = quality_of([False, False], [0.1, 0.9], [False, True])
    assert one_class.roc_auc is None and one_class.recall is None and one_class.precision == 0.0


def test_sampled_genuine_labels_weigh_each_false_alert_as_the_traffic_it_stands_for() -> None:
    """Genuine events labelled at 2%: e2's one false alert stands for fifty; recall and ROC-AUC are unchanged."""
    _, scores, alerts, labels = zip(*EVENTS, strict=True)
    weighted = quality_of(labels, scores, alerts, negative_weight=50)
    assert weighted.precision == pytest.approx(2 / (2 + 50)) and weighted.negative_weight == 50
    assert (weighted.recall, weighted.roc_auc, weighted.alerts) == (pytest.approx(2 / 3), pytest.approx(7 / 9), 3)
    live = LiveQuality(window=100, max_pending=100, negative_weight=50)
    live.add_scores([e[0] for e in EVENTS], scores, alerts)
    live.add_labels([e[0] for e in EVENTS], labels)
    assert live.snapshot() == weighted
    settings = Settings().model_copy(
        update={"models": Settings().models.model_copy(update={"genuine_label_fraction": 0.02})}
    )
    assert LiveQuality.from_settings(settings).negative_weight == pytest.approx(50)
    with pytest.raises(ValueError, match="at least 1"):
        LiveQuality(negative_weight=0.5)


def test_live_quality_joins_labels_that_come_before_or_after_their_scores() -> None:
    quality = LiveQuality(window=100, max_pending=100)
    early, late = EVENTS[:3], EVENTS[3:]
    assert quality.add_labels([e[0] for e in early], [e[3] for e in early]) == 0  # labels before scores
    assert quality.add_scores([e[0] for e in EVENTS], [e[1] for e in EVENTS], [e[2] for e in EVENTS]) == 3
    assert quality.snapshot().labelled == 3
    assert quality.add_labels([e[0] for e in late], [e[3] for e in late]) == 3  # labels after scores
    assert quality.add_labels(["e1"], [False]) == 0  # a second label for a judged event changes nothing
    check(quality.snapshot())
    assert (quality.pending_scores, quality.matched) == (0, 6)


def test_live_quality_covers_only_the_latest_window_and_bounds_what_waits() -> None:
    quality = LiveQuality(window=3, max_pending=2)
    for event_id, score, alert, label in EVENTS:
        quality.add_scores([event_id], [score], [alert])
        quality.add_labels([event_id], [label])
    latest = quality.snapshot()  # e4 e5 e6: one fraud, never alerted
    assert (latest.labelled, latest.positives, latest.alerts, latest.recall) == (3, 1, 0, 0.0)

    bounded = LiveQuality(window=10, max_pending=2)
    bounded.add_scores(["a", "b", "c"], [0.1, 0.2, 0.3], [False, False, False])
    assert bounded.pending_scores == 2 and bounded.evicted_scores == 1
    assert bounded.add_labels(["a"], [True]) == 0  # its score was dropped: now a waiting label
    bounded.add_labels(["x", "y"], [True, True])
    assert bounded.pending_labels == 2 and bounded.evicted_labels == 1


def test_quality_from_frames_gives_the_same_numbers() -> None:
    scores = pd.DataFrame(
        {
            "event_id": [e[0] for e in EVENTS] + ["unlabelled"],
            "score": [e[1] for e in EVENTS] + [0.99],
            "is_alert": [e[2] for e in EVENTS] + [True],
        }
    )
    labels = pd.DataFrame(
        {
            "event_id": [e[0] for e in EVENTS] + ["never-scored"],
            "is_fraud": [e[3] for e in EVENTS] + [True],
            "label_time": pd.to_datetime(range(7), unit="h"),
        }
    )
    check(quality_from_frames(scores, labels))
    latest = quality_from_frames(scores, labels, window=3)  # latest by label time: e4 e5 e6
    assert (latest.labelled, latest.positives, latest.alerts) == (3, 1, 0)
    with pytest.raises(ValueError, match="lacks column"):
        quality_from_frames(scores.drop(columns="is_alert"), labels)


@dataclass
class FakeMessage:
    _topic: str
    _value: bytes | None
    _error: Any = None

    def error(self) -> Any:
        return self._error

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value


class FakeConsumer:
    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = batches
        self.subscribed: list[str] = []
        self.closed = False
        self.requested: list[int] = []

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.requested.append(num_messages)
        return self.batches.pop(0) if self.batches else []

    positions: dict[tuple[str, int], int] = {}
    highs: dict[tuple[str, int], int] = {}
    sought: list[tuple[str, int, int]] = []

    def assignment(self) -> list[Any]:
        return [TopicPartition(topic, partition) for topic, partition in self.positions]

    def position(self, partitions: list[Any]) -> list[Any]:
        return [TopicPartition(p.topic, p.partition, self.positions[(p.topic, p.partition)]) for p in partitions]

    def get_watermark_offsets(self, partition: Any, timeout: float = 0) -> tuple[int, int]:
        return 0, self.highs[(partition.topic, partition.partition)]

    def seek(self, partition: Any) -> None:
        self.sought = [*self.sought, (partition.topic, partition.partition, partition.offset)]

    def close(self) -> None:
        self.closed = True


def test_a_feed_far_behind_skips_to_the_newest_records() -> None:
    consumer = FakeConsumer([])
    consumer.positions = {("scores", 0): 100, ("scores", 1): 5_000, ("labels", 0): -1001}  # -1001: no position yet
    consumer.highs = {("scores", 0): 10_100, ("scores", 1): 5_500, ("labels", 0): 40}
    feed = QualityFeed(Settings(), LiveQuality(), consumer=consumer)
    assert feed.skip_ahead(max_lag=3_000) == 9_000  # keeps 1,000 per partition: only scores/0 is further behind
    assert consumer.sought == [("scores", 0, 9_100)] and feed.skipped == 9_000


@pytest.mark.parametrize("following", [False, True], ids=["polled", "followed"])
def test_the_feed_decodes_scores_and_labels_from_their_topics(following: bool) -> None:
    settings = Settings()
    topics = settings.kafka.topics
    scores = make_encoder("scores", settings, topics.scores)
    labels = make_encoder("labels", settings, topics.labels)

    def score(event_id: str, value: float, alert: bool) -> FakeMessage:
        record = {
            "event_id": event_id,
            "card_id": "card-1",
            "score": value,
            "is_alert": alert,
            "model_name": "fraud_xgb",
            "model_version": "1",
            "event_time": 1,
            "scored_at": 2,
            "features_as_of": 1,
        }
        return FakeMessage(topics.scores, scores.encode(record))

    def label(event_id: str, fraud: bool) -> FakeMessage:
        record = {"event_id": event_id, "card_id": "card-1", "is_fraud": fraud, "label_time": 3}
        return FakeMessage(topics.labels, labels.encode(record))

    consumer = FakeConsumer(
        [
            [score(e[0], e[1], e[2]) for e in EVENTS] + [FakeMessage(topics.scores, b"garbage")],
            [label(e[0], e[3]) for e in EVENTS] + [FakeMessage(topics.labels, None, _error="broker down")],
        ]
    )
    quality = LiveQuality()
    feed = QualityFeed(settings, quality, consumer=consumer)
    assert consumer.subscribed == [topics.scores, topics.labels]
    if following:  # a background thread reads both batches; the snapshot waits for nothing
        feed.follow(max_per_s=10_000, wait_s=0.01)
        deadline = time.monotonic() + 10
        while consumer.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        feed.close()  # joins the thread: what it had read is applied
        assert consumer.closed
        check(feed.snapshot())
        assert feed.undecodable == 1
        assert set(consumer.requested) == {100}  # 10,000 a second in rounds of 0.01 s
        return
    assert feed.poll() == 6 and feed.undecodable == 1
    assert feed.poll() == 6
    check(feed.snapshot())
    feed.close()
    assert consumer.closed
