"""`featurestream produce file`: replay JSON Lines, Parquet or Avro files onto a topic, validated record by record.

The file as a whole is checked before anything is sent (see :mod:`pipelines.produce.readers`); a record
that still does not fit the schema (a wrong type in one row) is not produced, and is counted and shown as
rejected, so the run exits non-zero instead of losing it quietly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastavro.validation import ValidationError, validate

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.kafka.producer import CountingProducer, check_cluster
from pipelines.produce.pacing import Pacer
from pipelines.produce.readers import FileSchemaMismatchError, open_records
from pipelines.produce.summary import ProduceSummary, ProgressCallback, ProgressUpdate, topic_summary
from pipelines.schemas.store import SchemaStore, load_store
from pipelines.serde.codec import parse_logical
from pipelines.serde.encoder import make_encoder
from pipelines.serde.errors import EncodeError

MAX_REJECTION_EXAMPLES = 5

__all__ = ["FileSchemaMismatchError", "produce_file", "subject_for_topic"]


class UnknownTopicSubjectError(FeaturestreamError):
    """A topic that is not one of the project's, without a subject to validate against."""


def subject_for_topic(settings: Settings, topic: str) -> str:
    """The schema subject of a project topic (``kafka.topics.<name>`` -> ``schemas/<name>/``)."""
    for subject, name in settings.kafka.topics.model_dump().items():
        if name == topic:
            return str(subject)
    raise UnknownTopicSubjectError(
        f"topic {topic!r} is not one of the project's topics ({', '.join(settings.kafka.topics.all())}); "
        "name its schema with --subject"
    )


def produce_file(
    settings: Settings,
    path: Path,
    topic: str,
    *,
    subject: str | None = None,
    key_field: str | None = None,
    rate: float | None = None,
    store: SchemaStore | None = None,
    progress: ProgressCallback | None = None,
    check_timeout_s: float = 10.0,
    flush_timeout_s: float = 120.0,
) -> ProduceSummary:
    """Produce every record of ``path`` to ``topic``, keyed by ``key_field`` (default: card_id if the schema has it)."""
    store = store or load_store()
    schema = store.latest(subject or subject_for_topic(settings, topic))
    field_names = [f["name"] for f in schema.definition["fields"]]
    if key_field is None:
        key_field = "card_id" if "card_id" in field_names else None
    elif key_field not in field_names:
        raise FileSchemaMismatchError(f"key field {key_field!r} is not a field of {schema.subject} v{schema.version}")
    batches = open_records(path, schema)  # checks the file before we touch the cluster
    check_cluster(settings, [topic], timeout_s=check_timeout_s)
    encoder = make_encoder(schema.subject, settings, topic)
    parsed = parse_logical(schema.definition)
    producer = CountingProducer(settings)
    pacer = Pacer(rate)
    rejected = 0
    examples: list[str] = []
    seen = handed_over = 0
    started = time.monotonic()

    for batch in batches:
        values: list[bytes] = []
        keys: list[str | None] = []
        for record in batch:
            seen += 1
            problem = _problem(parsed, record)
            if problem is None:
                try:
                    values.append(encoder.encode(record))
                except EncodeError as exc:
                    problem = str(exc)
                else:
                    keys.append(str(record[key_field]) if key_field and record.get(key_field) is not None else None)
                    continue
            rejected += 1
            if len(examples) < MAX_REJECTION_EXAMPLES:
                examples.append(f"record {seen}: {problem}")
        step = max(1, int(rate / 10)) if rate else max(1, len(values))
        for start in range(0, len(values), step):
            pacer.wait_for(handed_over)
            producer.send_many(topic, values[start : start + step], keys[start : start + step])
            handed_over += len(values[start : start + step])
        if progress is not None:
            progress(ProgressUpdate(seen, None, 0, time.monotonic() - started))

    report = producer.flush(flush_timeout_s)
    return ProduceSummary(
        main=topic_summary(report, topic),
        rejected=rejected,
        rejection_examples=tuple(examples),
        failure_reasons=dict(report.failure_reasons),
        elapsed_s=time.monotonic() - started,
    )


def _problem(parsed: dict[str, Any], record: dict[str, Any]) -> str | None:
    try:
        validate(record, parsed, raise_errors=True)
    except ValidationError as exc:
        return "; ".join(str(error) for error in exc.errors) or str(exc)
    return None
