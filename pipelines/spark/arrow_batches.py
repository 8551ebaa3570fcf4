"""Arrow batches for Spark's Python stages: joined into larger tables, and typed from a DDL schema.

``mapInArrow`` hands over record batches of ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (10,000 by
default). Stages with a fixed cost per call (a GX validation run, a Kafka transaction) join them first; order is
kept and every row comes out exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

_ARROW_TYPES = {
    "string": pa.string(),
    "binary": pa.binary(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    # Spark's Arrow timestamps are microseconds in the session time zone (always UTC in featurestream).
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(ddl: str) -> pa.Schema:
    """The Arrow schema Spark exchanges for a flat DDL schema such as ``"a string, b long"``."""
    fields = (part.strip().split(" ", 1) for part in ddl.split(","))
    return pa.schema([(name, _ARROW_TYPES[kind.strip()]) for name, kind in fields])


def joined_tables(batches: Iterable[pa.RecordBatch], max_rows: int) -> Iterator[pa.Table]:
    """Consecutive non-empty batches as tables of up to ``max_rows`` rows (a single larger batch passes alone)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        if pending and rows + batch.num_rows > max_rows:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
        pending.append(batch)
        rows += batch.num_rows
    if pending:
        yield pa.Table.from_batches(pending)
