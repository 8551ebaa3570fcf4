"""The per-worker cache of transactional clients (bounded, least recently used closed first), and the sink
producers' log: a fenced producer is the fencing working, not a fatal error in the executor's log."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, cast

import pytest

from pipelines.config import Settings
from pipelines.kafka.transactional_sink import (
    ClientCache,
    DeliveryError,
    ExactlyOnceSink,
    PartitionDelivery,
    ProducerLog,
    TransactionalClients,
    _FencedError,
)


class _Closeable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def poll(self, timeout: float) -> int:
        return 0


def _clients() -> tuple[TransactionalClients, _Closeable]:
    consumer = _Closeable()
    return TransactionalClients(producer=cast(Any, _Closeable()), consumer=cast(Any, consumer)), consumer


def test_taken_clients_leave_the_cache_until_kept_again() -> None:
    cache = ClientCache(capacity=2)
    clients, _ = _clients()
    cache.keep(("b", "t0"), clients)
    assert cache.take(("b", "t0")) is clients
    assert cache.take(("b", "t0")) is None  # in use: a second task of the same id would build its own
    assert cache.take(("other-broker", "t0")) is None


def test_least_recently_kept_clients_are_closed_beyond_capacity() -> None:
    cache = ClientCache(capacity=2)
    made = [_clients() for _ in range(3)]
    for index, (clients, _) in enumerate(made):
        cache.keep(("b", f"t{index}"), clients)
    assert len(cache) == 2
    assert [consumer.closed for _, consumer in made] == [True, False, False]
    assert cache.take(("b", "t0")) is None


def test_a_fenced_producer_logs_at_info_and_other_lines_keep_their_level(caplog: pytest.LogCaptureFixture) -> None:
    log = ProducerLog()
    with caplog.at_level(logging.DEBUG, logger="featurestream.kafka.librdkafka"):
        log.log(
            logging.CRITICAL,
            "%s [%s] %s",
            "FATAL",
            "producer-3",
            "Fatal error: Local: This instance has been fenced by a newer instance",
        )
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "producer-3", "Connect to ipv4#127.0.0.1:1 failed")
    assert [(r.levelno, r.getMessage().split(" ")[0]) for r in caplog.records] == [
        (logging.INFO, "FATAL"),
        (logging.ERROR, "FAIL"),
    ]


def test_a_delivery_fenced_again_after_the_fresh_retry_fails_as_a_delivery_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept producer fenced, then its fresh replacement fenced at once (a concurrent attempt of the task): the
    task fails with the sink's own error, which Spark retries, not with the internal fencing signal."""
    sink = ExactlyOnceSink(Settings(stack={"state_dir": tmp_path}), "scores", "marker")  # type: ignore[arg-type]
    attempts: list[object] = []

    def fenced(self: ExactlyOnceSink, clients: object, *args: object) -> PartitionDelivery:
        attempts.append(clients)
        raise _FencedError

    monkeypatch.setattr(ExactlyOnceSink, "_deliver", fenced)
    monkeypatch.setattr(ExactlyOnceSink, "_new_clients", lambda self, partition: f"fresh-{partition}")
    with pytest.raises(DeliveryError, match="concurrent attempt"):
        sink.deliver(3, 1, [])
    assert attempts == ["fresh-1", "fresh-1"]  # nothing kept in this test process: fresh, then fresh again


def test_connect_asks_until_a_broker_connection_answers() -> None:
    from types import SimpleNamespace

    from pipelines.kafka.transactional_sink import connect

    class Client:
        def __init__(self, answered_by: list[int]) -> None:
            self.answered_by = answered_by
            self.asked = 0

        def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
            self.asked += 1
            return SimpleNamespace(orig_broker_id=self.answered_by.pop(0) if self.answered_by else -1)

    via_bootstrap_first = Client([-1, -1, 1])
    connect(via_bootstrap_first, "t")  # type: ignore[arg-type]
    assert via_bootstrap_first.asked == 3
    never = Client([])
    clock = time.monotonic()
    connect(never, "t", settle_s=0.1)  # type: ignore[arg-type]  # gives up; init_transactions then waits
    assert 0.1 <= time.monotonic() - clock < 1.0 and never.asked > 2


def test_connect_is_best_effort() -> None:
    from confluent_kafka import KafkaError, KafkaException

    from pipelines.kafka.transactional_sink import connect

    class Unreachable:
        def list_topics(self, topic: str, timeout: float) -> None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    connect(Unreachable(), "t", settle_s=0.05)  # type: ignore[arg-type]  # returns; the next call reports it
