"""Column names and Spark schemas shared by the stages of the streaming job.

The job is a chain of DataFrame transforms; naming the columns once keeps the stages (decode/validate,
entity state, batch writers) in agreement and lets a test build a ten-row input for any stage.
"""

from __future__ import annotations

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


SRC_TIMESTAMP_MS = "src_timestamp_ms"


def stateful_output_schema(domain: Domain) -> str:
    """What the Python state function returns: :func:`entity_output_schema` with timestamps as epoch millis.

    pyspark converts timestamp columns to and from pandas row by row with time-zone handling; through the
    grouped stage, plain longs are much cheaper. The timestamps are rebuilt in the JVM right after.
    """
    return (
        entity_output_schema(domain)
        .replace("src_timestamp timestamp", f"{SRC_TIMESTAMP_MS} long")
        .replace(f"{domain.event_time_column} timestamp", f"{EVENT_TIME_MS} long")
    )


def state_schema(domain: Domain) -> str:
    """History of one state bucket (many entities) kept in Spark's state store: per event its entity id, event
    time and the columns the aggregates read.

    Arrays are packed into binary (numbers) and separator-joined strings (categories): pyspark 4.0.0's
    applyInPandasWithState cannot hand array-typed state back to Python (the JVM pickler fails on it).
    """
    numeric = dict.fromkeys(c for f in domain.entities for c in f.numeric_columns)
    category = dict.fromkeys(c for f in domain.entities for c in f.category_columns)
    fields = ["entity_ids string", "times_ms binary"]
    fields += [f"num_{c} binary" for c in numeric]
    fields += [f"cat_{c} string" for c in category]
    return ", ".join(fields)
