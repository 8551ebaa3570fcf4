"""Exactly-once delivery of one Spark partition of one micro-batch, in one Kafka transaction.

Spark's Kafka sink is at-least-once, and ``foreachBatch`` replays a batch (same batch id, same data) after a
crash. Each Spark task here delivers its partition in a Kafka transaction whose ``transactional.id`` is fixed
per (sink, partition), and commits, inside the same transaction, a marker: the consumer-group offset
``batch_id + 1`` of a group named for that (sink, partition). A replayed task first reads that marker; if the
batch is already there it publishes nothing. ``init_transactions`` fences a zombie attempt of the same task.
read_committed consumers therefore see every record exactly once.

The marker needs no extra topic: it is an offset commit on partition 0 of a topic the sink writes to, under a
group nobody consumes with.

A Python worker keeps its (producer, marker consumer) pair per transactional id for the next batch
(:class:`ClientCache`). A fresh transactional producer is connected before ``init_transactions``: initialised at
once, librdkafka's producer-id request raced its broker connection and waited ~0.5 s for a retry timer in over
half of the starts. librdkafka reaches a cluster first through a bootstrap connection, then opens one per broker
it learns of; the request needs the latter. So the sink's clients connect to every broker at once (no sparse
connections) and :func:`connect` asks for metadata until a broker connection, not the bootstrap one, answers
(``benchmarks/transactional_start.py``). Another worker delivering the same partition later fences the kept
producer; the kept producer notices at the first coordinator call of its next transaction (the marker offsets,
sent before any record) and is replaced by a fresh one, which fences in turn and re-reads the marker.

librdkafka's ``send_offsets_to_transaction`` can block past its timeout, for good, when the marker group's
coordinator broker has died (librdkafka issues 5456 and 5511, open): a broker killed mid-run left every task of
the next batch waiting there for as long as anyone watched. The call therefore runs on a helper thread and is
given up after its timeout and a grace period (:func:`call_within`). The stuck clients are set aside, never used
or closed again (closing them could block as well), and a fresh pair takes over: its ``init_transactions`` fences
the stuck producer and aborts whatever it had open, and its own coordinator lookup finds the live broker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.kafka.client_config import consumer_config, producer_config

Header = tuple[str, bytes]

_TRANSIENT_CODES = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


_FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
_FENCED_TEXT = "fenced by a newer instance"
_LIBRDKAFKA_LOG = logging.getLogger("featurestream.kafka.librdkafka")
log = logging.getLogger(__name__)


class ProducerLog:
    """A sink producer's librdkafka log lines, through Python logging (served by ``poll``).

    librdkafka reports a producer fenced by a newer one with the same transactional id at its FATAL level. For
    this sink that is the fencing working as designed (a kept producer whose partition another worker has
    delivered since, or a zombie attempt of a retried task), so it is logged at INFO; every other line keeps its
    level.
    """

    def log(self, level: int, fmt: str, *args: object) -> None:
        if level > logging.INFO and any(_FENCED_TEXT in str(arg) for arg in args):
            level = logging.INFO
        _LIBRDKAFKA_LOG.log(level, fmt, *args)


_PRODUCER_LOG = ProducerLog()


def _transient(error: KafkaError) -> bool:
    return bool(error.retriable()) or error.code() in _TRANSIENT_CODES


@dataclass
class TransactionalClients:
    """A transactional producer (initialised) and the consumer that reads and names its marker group."""

    producer: Producer
    consumer: Consumer

    def close(self) -> None:
        serve_logs(self.producer)
        self.consumer.close()


def serve_logs(producer: Producer) -> None:
    """Hand the producer's queued log lines to :class:`ProducerLog`. A producer in a fatal state (fenced) raises
    its error again from ``poll``; the caller is already handling that error."""
    with contextlib.suppress(KafkaException):
        producer.poll(0)


class ClientCache:
    """Per-process clients by (bootstrap servers, transactional id); the least recently used beyond ``capacity``
    are closed, so a long-lived worker serving many short-lived sinks (tests, restarts) holds few clients."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._clients: OrderedDict[tuple[str, str], TransactionalClients] = OrderedDict()

    def take(self, key: tuple[str, str]) -> TransactionalClients | None:
        """The kept clients (removed from the cache while in use), or None."""
        return self._clients.pop(key, None)

    def keep(self, key: tuple[str, str], clients: TransactionalClients) -> None:
        self._clients[key] = clients
        while len(self._clients) > self.capacity:
            _, evicted = self._clients.popitem(last=False)
            evicted.close()

    def __len__(self) -> int:
        return len(self._clients)


_WORKER_CLIENTS = ClientCache()


class OutgoingRecord(NamedTuple):
    """One record to publish. A named tuple, not a dataclass: a scoring task builds one per event, and a frozen
    dataclass costs three times as much to construct (measured, 50,000 records: 53 ms against 18 ms)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = ()


@dataclass(frozen=True)
class PartitionDelivery:
    """What one task did: delivered ``records`` now, or found the batch already delivered."""

    sink: str
    batch_id: int
    partition: int
    records: int
    already_delivered: bool


class DeliveryError(FeaturestreamError):
    """A transaction could not be committed; the task fails and Spark retries it (nothing is half-visible)."""


class _StuckError(Exception):
    """A librdkafka call did not return within its timeout: its clients are set aside, fresh ones take over."""


STUCK_GRACE_S = 5.0
"""How long past its own timeout a librdkafka call may take before it counts as stuck."""

_SET_ASIDE: list[TransactionalClients] = []
"""Clients a stuck call still uses: kept referenced (never closed, never freed) so nothing waits on them again."""


def call_within(call: Callable[[], object], timeout_s: float, what: str) -> None:
    """Run ``call`` on a daemon thread and wait at most ``timeout_s``; its exception, if any, is raised here.

    For librdkafka calls that may ignore their own timeout (confluent-kafka releases the interpreter lock while
    they block, so the thread can be left behind). Raises :class:`_StuckError` if the call has not returned.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, name=f"featurestream-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise _StuckError(f"{what} did not return within {timeout_s:.0f} s")
    if outcome[0] is not None:
        raise outcome[0]


class _FencedError(Exception):
    """A kept producer was fenced by a newer one with the same transactional id (internal: retried fresh)."""


class ExactlyOnceSink:
    """Construct on the executor (it holds only settings and names; the clients live in the worker's
    :class:`ClientCache`)."""

    def __init__(self, settings: Settings, sink_name: str, marker_topic: str, timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.sink_name = sink_name
        self.marker_topic = marker_topic
        self.timeout_s = timeout_s

    def transactional_id(self, partition: int) -> str:
        return f"{self.settings.kafka.client_id}-{self.sink_name}-p{partition}"

    def marker_group(self, partition: int) -> str:
        return f"{self.settings.kafka.client_id}-{self.sink_name}-p{partition}-delivered"

    def last_delivered_batch(self, partition: int) -> int:
        """The highest batch id this (sink, partition) committed, or -1.

        A new group's coordinator may still be loading (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS):
        retriable errors are retried until the timeout.
        """
        consumer = self._marker_consumer(partition)
        try:
            return self._last_delivered(consumer)
        finally:
            consumer.close()

    def _last_delivered(self, consumer: Consumer) -> int:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                committed = consumer.committed([TopicPartition(self.marker_topic, 0)], timeout=self.timeout_s)
                break
            except KafkaException as exc:
                if not _transient(exc.args[0]) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        offset = committed[0].offset
        return offset - 1 if offset >= 0 else -1

    def deliver(self, batch_id: int, partition: int, records: Iterable[OutgoingRecord]) -> PartitionDelivery:
        """Publish the records and the batch marker atomically, unless this batch was delivered before; the
        clients that did it are kept for this partition's next batch in this worker."""
        batch = records if isinstance(records, Sequence) else list(records)  # a fenced attempt sends them again
        key = (str(producer_config(self.settings).get("bootstrap.servers")), self.transactional_id(partition))
        clients = _WORKER_CLIENTS.take(key) or self._new_clients(partition)
        try:
            delivery = self._deliver(clients, batch_id, partition, batch)
        except _FencedError:  # another worker took over this partition's transactional id since: fence it back
            delivery, clients = self._deliver_fresh(batch_id, partition, batch)
        except _StuckError as exc:
            log.warning("%s: batch %d partition %d: %s; fresh clients", self.sink_name, batch_id, partition, exc)
            _SET_ASIDE.append(clients)
            delivery, clients = self._deliver_fresh(batch_id, partition, batch)
        _WORKER_CLIENTS.keep(key, clients)
        return delivery

    def _deliver_fresh(
        self, batch_id: int, partition: int, batch: Sequence[OutgoingRecord]
    ) -> tuple[PartitionDelivery, TransactionalClients]:
        """The retry with new clients (they fence the old ones); failing again fails the task, which Spark retries."""
        clients = self._new_clients(partition)
        try:
            return self._deliver(clients, batch_id, partition, batch), clients
        except _StuckError as exc:
            _SET_ASIDE.append(clients)
            raise DeliveryError(f"{self.sink_name}: batch {batch_id} partition {partition}: {exc}") from exc
        except _FencedError as exc:  # fenced again at once: another attempt of this task runs concurrently
            raise DeliveryError(
                f"{self.sink_name}: batch {batch_id} partition {partition} not delivered: a concurrent attempt "
                "with the same transactional id fenced this one (Spark retries the task)"
            ) from exc

    def _new_clients(self, partition: int) -> TransactionalClients:
        producer = Producer(
            {
                **producer_config(self.settings, transactional_id=self.transactional_id(partition)),
                "transaction.timeout.ms": 120_000,
                "enable.sparse.connections": False,
            },
            logger=_PRODUCER_LOG,
        )
        consumer = self._marker_consumer(partition)  # reads the marker, then names its group in the transaction
        try:
            connect(producer, self.marker_topic)  # see the module's docstring
            producer.init_transactions(self.timeout_s)  # fences an older attempt of this task, aborts its txn
        except KafkaException as exc:
            consumer.close()
            raise DeliveryError(
                f"{self.sink_name}: partition {partition}: transactions not initialised: {exc.args[0].str()}"
            ) from exc
        return TransactionalClients(producer, consumer)

    def _deliver(
        self,
        clients: TransactionalClients,
        batch_id: int,
        partition: int,
        records: Sequence[OutgoingRecord],
    ) -> PartitionDelivery:
        """One attempt with ``clients``; on a Kafka error they are closed (never reused)."""
        producer, consumer = clients.producer, clients.consumer
        try:
            if self._last_delivered(consumer) >= batch_id:
                return PartitionDelivery(self.sink_name, batch_id, partition, 0, already_delivered=True)
            producer.begin_transaction()
            # The marker first: its coordinator round trip finds out, before any record is sent, whether another
            # worker has fenced this producer since the last batch.
            marker = [TopicPartition(self.marker_topic, 0, batch_id + 1)]
            group = consumer.consumer_group_metadata()
            call_within(
                lambda: producer.send_offsets_to_transaction(marker, group, self.timeout_s),
                self.timeout_s + STUCK_GRACE_S,
                "send_offsets_to_transaction",
            )
            for record in records:
                self._produce(producer, record)
            producer.commit_transaction(self.timeout_s)
        except KafkaException as exc:
            clients.close()  # never reused: a new producer's init_transactions aborts whatever this one left open
            error = exc.args[0]
            if error.code() in _FENCED_CODES:
                raise _FencedError from exc
            raise DeliveryError(
                f"{self.sink_name}: batch {batch_id} partition {partition} not delivered: {error.str()}"
            ) from exc
        serve_logs(producer)
        return PartitionDelivery(self.sink_name, batch_id, partition, len(records), already_delivered=False)

    def _produce(self, producer: Producer, record: OutgoingRecord) -> None:
        while True:
            try:
                if record.headers:
                    producer.produce(record.topic, record.value, record.key, headers=list(record.headers))
                else:  # no empty header list to build and convert per record
                    producer.produce(record.topic, record.value, record.key)
                return
            except BufferError:
                producer.poll(0.5)  # local queue full: let deliveries drain, then retry

    def _marker_consumer(self, partition: int) -> Consumer:
        config = consumer_config(self.settings, self.marker_group(partition), read_committed=True)
        config["client.id"] = f"{self.settings.kafka.client_id}-marker-{uuid.uuid4().hex[:6]}"
        config["enable.sparse.connections"] = False
        consumer = Consumer(config)
        connect(consumer, self.marker_topic)
        return consumer


def connect(client: Producer | Consumer, topic: str, settle_s: float = 1.0) -> None:
    """Return once a broker connection (not the bootstrap one) answers a metadata request, or after ``settle_s``.

    Metadata served through the bootstrap connection carries ``orig_broker_id`` -1; the broker connections come
    up a few milliseconds later. Without them a producer's ``init_transactions`` or a consumer's first offset
    lookup waits for a ~0.5 s retry timer instead. Best effort: an unreachable cluster is reported by the call
    that needs it (``init_transactions``, the marker lookup), with their timeouts and retries.
    """
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        try:
            if client.list_topics(topic, timeout=max(0.01, deadline - time.monotonic())).orig_broker_id >= 0:
                return
        except KafkaException:
            pass
        time.sleep(0.002)
