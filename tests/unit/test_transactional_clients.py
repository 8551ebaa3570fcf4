"""The per-worker cache of transactional clients (bounded, least recently used closed first), and the sink
producers' log: a fenced producer is the fencing working, not a fatal error in the executor's log."""

from __future__ import annotations

import logging
import threading
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
    _StuckError,
    call_within,
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


def test_a_call_within_its_time_returns_and_hands_its_error_to_the_caller() -> None:
    results: list[int] = []
    call_within(lambda: results.append(1), 5.0, "quick")
    assert results == [1]

    def failing() -> None:
        raise ValueError("from the helper thread")

    with pytest.raises(ValueError, match="from the helper thread"):
        call_within(failing, 5.0, "failing")


def test_a_call_that_ignores_its_timeout_is_given_up() -> None:
    """librdkafka's send_offsets_to_transaction can block for good when the group coordinator died."""
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(_StuckError, match="stuck-call did not return within 0 s"):
        call_within(release.wait, 0.3, "stuck-call")
    assert time.monotonic() - started < 5
    release.set()


def test_a_stuck_delivery_is_set_aside_and_fresh_clients_deliver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stuck clients are neither reused nor closed (closing could block too); fresh ones deliver the batch."""
    from pipelines.kafka import transactional_sink

    sink = ExactlyOnceSink(Settings(stack={"state_dir": tmp_path}), "scores", "marker")  # type: ignore[arg-type]
    stuck_clients, stuck_consumer = _clients()
    fresh_clients, _ = _clients()
    handed_out = iter([stuck_clients, fresh_clients])
    attempts: list[object] = []

    def deliver_once(
        self: ExactlyOnceSink, clients: object, batch_id: int, partition: int, records: object
    ) -> PartitionDelivery:
        attempts.append(clients)
        if clients is stuck_clients:
            raise _StuckError("send_offsets_to_transaction did not return within 65 s")
        return PartitionDelivery("scores", batch_id, partition, 0, already_delivered=False)

    monkeypatch.setattr(ExactlyOnceSink, "_deliver", deliver_once)
    monkeypatch.setattr(ExactlyOnceSink, "_new_clients", lambda self, partition: next(handed_out))
    monkeypatch.setattr(transactional_sink, "_SET_ASIDE", [])
    monkeypatch.setattr(transactional_sink, "_WORKER_CLIENTS", ClientCache())
    delivery = sink.deliver(4, 2, [])
    assert delivery.batch_id == 4 and attempts == [stuck_clients, fresh_clients]
    assert [stuck_clients] == transactional_sink._SET_ASIDE and not stuck_consumer.closed
    assert (
        transactional_sink._WORKER_CLIENTS.take(next(iter(transactional_sink._WORKER_CLIENTS._clients)))
        is fresh_clients
    )
