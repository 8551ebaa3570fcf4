"""`featurestream produce transactions`: generate, encode, produce, account.

Transactions go to ``kafka.topics.transactions`` and labels to ``kafka.topics.labels``, both keyed by
card_id (a card's events stay in order on one partition). Bad records carry a ``featurestream-bad-kind``
header; good ones carry no header at all (headers cost bytes and throughput).
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from pipelines.config import Settings
from pipelines.generator import BAD_KINDS, FRAUD_PATTERNS, GeneratorOptions, TransactionGenerator
from pipelines.generator.bad_records import UNDECODABLE_KINDS, undecodable_payload
from pipelines.generator.columns import NOT_BAD
from pipelines.generator.generator import GeneratedChunk
from pipelines.kafka.producer import CountingProducer, check_cluster
from pipelines.produce.pacing import Pacer
from pipelines.produce.summary import (
    BAD_KIND_HEADER,
    ProduceSummary,
    ProgressCallback,
    ProgressUpdate,
    topic_summary,
)
from pipelines.serde.encoder import Encoder, make_encoder


def produce_transactions(
    settings: Settings,
    options: GeneratorOptions,
    *,
    labels: bool = True,
    progress: ProgressCallback | None = None,
    check_timeout_s: float = 10.0,
    flush_timeout_s: float = 120.0,
) -> ProduceSummary:
    """Produce ``options.count`` generated transactions (and their labels); returns exact counts."""
    topic = settings.kafka.topics.transactions
    labels_topic = settings.kafka.topics.labels
    check_cluster(settings, [topic, labels_topic] if labels else [topic], timeout_s=check_timeout_s)
    encoder = make_encoder("transactions", settings, topic)
    labels_encoder = make_encoder("labels", settings, labels_topic) if labels else None
    generator = TransactionGenerator(options)
    producer = CountingProducer(settings)
    pacer = Pacer(options.rate)
    bad_by_kind: Counter[str] = Counter()
    fraud_by_pattern: Counter[str] = Counter()
    started = time.monotonic()
    produced = labelled = 0

    for chunk in generator.chunks():
        pacer.wait_for(chunk.offset)
        _send_transactions(producer, topic, encoder, generator, chunk, bad_by_kind)
        fraud = np.bincount(chunk.transactions.fraud, minlength=len(FRAUD_PATTERNS) + 1)
        fraud_by_pattern.update({name: int(fraud[i + 1]) for i, name in enumerate(FRAUD_PATTERNS) if fraud[i + 1]})
        produced += len(chunk.transactions)
        if labels_encoder is not None and len(chunk.labels):
            producer.send_many(
                labels_topic, labels_encoder.encode_many(chunk.labels.records()), chunk.labels.card_id.tolist()
            )
            labelled += len(chunk.labels)
        if progress is not None:
            progress(ProgressUpdate(produced, options.count, labelled, time.monotonic() - started))

    report = producer.flush(flush_timeout_s)
    return ProduceSummary(
        main=topic_summary(report, topic),
        labels=topic_summary(report, labels_topic) if labels else None,
        bad_by_kind={kind: bad_by_kind[kind] for kind in BAD_KINDS if bad_by_kind[kind]},
        fraud_by_pattern=dict(fraud_by_pattern),
        failure_reasons=dict(report.failure_reasons),
        elapsed_s=time.monotonic() - started,
    )


def _send_transactions(
    producer: CountingProducer,
    topic: str,
    encoder: Encoder,
    generator: TransactionGenerator,
    chunk: GeneratedChunk,
    bad_by_kind: Counter[str],
) -> None:
    """Encode a chunk and send it in row order; bad rows get their payload replaced and a header."""
    columns = chunk.transactions
    if not len(columns):
        return
    records = columns.records(generator.population)
    values = encoder.encode_many(records)
    keys = generator.population.card_ids[columns.card].tolist()
    bad_rows = np.flatnonzero(columns.bad_kind != NOT_BAD).tolist()
    if not bad_rows:
        producer.send_many(topic, values, keys)
        return
    rng = generator.chunk_rng(chunk.index, stream=2)
    start = 0
    for row in bad_rows:
        if row > start:
            producer.send_many(topic, values[start:row], keys[start:row])
        kind = generator.bad_kinds[int(columns.bad_kind[row])]
        value = undecodable_payload(kind, records[row], encoder, rng) if kind in UNDECODABLE_KINDS else values[row]
        producer.send(topic, value, keys[row], headers=[(BAD_KIND_HEADER, kind.encode())])
        bad_by_kind[kind] += 1
        start = row + 1
    if start < len(values):
        producer.send_many(topic, values[start:], keys[start:])
