"""Column names and Spark schemas shared by the stages of the streaming job.

The job is a chain of DataFrame transforms; naming the columns once keeps the stages (decode/validate,
entity state, batch writers) in agreement and lets a test build a ten-row input for any stage.
"""

from __future__ import annotations

import json

from pipelines.domains.base import Domain

# Where a record came from: kept on every row so a dead letter can name its source (Kafka Connect's DLQ model).
SOURCE_COLUMNS = ("src_topic", "src_partition", "src_offset", "src_timestamp", "src_key", "src_value")
SOURCE_SCHEMA = (
    "src_topic string, src_partition int, src_offset long, src_timestamp timestamp, src_key binary, src_value binary"
)

# What became of a record.
VERDICT = "verdict"
REASON = "reason"
ERROR = "error"
VERDICT_SCHEMA = "verdict string, reason string, error string"
OK = "ok"
DEAD_LETTER = "dead_letter"
LATE = "late"

# After the entity explode.
ENTITY = "entity"
ENTITY_ID = "entity_id"
EVENT_TIME_MS = "event_time_ms"
WATERMARK_TIME = "watermark_time"
DEAD_LETTER_ENTITY = "__dead_letter__"
STATE_BUCKET = "state_bucket"
IS_LATEST = "is_latest_in_batch"
PAYLOAD = "payload"
"""Through the stateful stage, the columns the state function never reads travel packed in one Avro value."""


def column_names(ddl: str) -> list[str]:
    """The column names of a DDL schema string such as ``"a string, b long"``."""
    return [part.strip().split(" ")[0] for part in ddl.split(",")]


def event_schema(domain: Domain) -> str:
    """The decoded event columns (DDL) the domain's features read; the card-fraud transaction fields."""
    del domain  # one event shape today; a second domain declares its own when it arrives
    return (
        "event_id string, card_id string, merchant_id string, amount double, currency string, mcc string, "
        "country string, channel string, event_time timestamp"
    )


def decoded_schema(domain: Domain) -> str:
    """Output of the decode/validate stage: source, verdict, event fields."""
    return f"{SOURCE_SCHEMA}, {VERDICT_SCHEMA}, {event_schema(domain)}"


def feature_schema(domain: Domain) -> str:
    """Every feature of every entity, nullable (a row carries only its own entity's features)."""
    return ", ".join(
        f"{aggregate.name} {'long' if aggregate.dtype == 'int64' else 'double'}"
        for features in domain.entities
        for aggregate in features.aggregates
    )


def entity_output_schema(domain: Domain) -> str:
    """Output of the stateful entity stage: a decoded row per (event, entity) plus that entity's features."""
    return (
        f"{decoded_schema(domain)}, {ENTITY} string, {ENTITY_ID} string, {IS_LATEST} boolean, {feature_schema(domain)}"
    )


def ddl_fields(ddl: str) -> list[tuple[str, str]]:
    """``(name, type)`` pairs of a flat DDL schema string."""
    return [(name, kind) for name, kind in (part.strip().split(" ", 1) for part in ddl.split(","))]


def state_columns(domain: Domain) -> list[str]:
    """Decoded columns the state function reads or sets, kept as plain columns through the stateful stage."""
    read = [c for f in domain.entities for c in (*f.numeric_columns, *f.category_columns)]
    return list(dict.fromkeys(["src_partition", "src_offset", VERDICT, REASON, ERROR, *read]))


def payload_fields(domain: Domain) -> list[tuple[str, str]]:
    """Decoded columns packed into :data:`PAYLOAD` for the stateful stage (the event time travels as millis).

    pyspark converts every column of a grouped-state call to pandas and back, row by row for strings and
    bytes; one binary column instead of ten costs a fraction of that, and the JVM packs and unpacks it.
    """
    kept = {*state_columns(domain), domain.event_time_column}
    return [(name, kind) for name, kind in ddl_fields(decoded_schema(domain)) if name not in kept]


_AVRO_TYPES: dict[str, object] = {
    "string": "string",
    "binary": "bytes",
    "int": "int",
    "long": "long",
    "double": "double",
    "boolean": "boolean",
    "timestamp": {"type": "long", "logicalType": "timestamp-micros"},
}


def payload_avro_schema(domain: Domain) -> str:
    """The Avro record :data:`PAYLOAD` holds (every field nullable, like the columns it packs)."""
    fields = [
        {"name": name, "type": ["null", _AVRO_TYPES[kind]], "default": None} for name, kind in payload_fields(domain)
    ]
    record = {"type": "record", "name": "StatePayload", "namespace": "featurestream.streaming", "fields": fields}
    return json.dumps(record)


def stateful_output_schema(domain: Domain) -> str:
    """What the Python state function returns: the plain state columns, the payload, the features.

    The event time travels as epoch millis (pyspark converts timestamps to pandas with per-row time-zone
    handling); the JVM rebuilds :func:`entity_output_schema` right after the stage.
    """
    types = dict(ddl_fields(decoded_schema(domain)))
    plain = ", ".join(f"{name} {types[name]}" for name in state_columns(domain))
    return (
        f"{plain}, {ENTITY} string, {ENTITY_ID} string, {IS_LATEST} boolean, {EVENT_TIME_MS} long, "
        f"{PAYLOAD} binary, {feature_schema(domain)}"
    )
