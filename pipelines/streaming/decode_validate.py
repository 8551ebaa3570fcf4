"""The stateless first stage: Kafka rows -> decoded events with a verdict (ok, or dead letter and why).

Runs as ``mapInArrow`` on the executors. Decoding uses the subject's :class:`RecordDecoder` (both wire formats,
schema evolution); validation uses the Great Expectations suite in ``schemas/`` through
:mod:`pipelines.validation`. Every input row comes out exactly once, in order: bad input is data, not an
exception, so the query never stops on it.

Arrow in and out, not pandas: the source columns pass through untouched (no conversion of the original bytes
and Kafka metadata to Python objects and back), and only the decoded fields GX judges become a pandas frame.

The validation clock is the largest Kafka timestamp of the chunk rather than the executor's wall clock, so a
replayed micro-batch judges exactly the same rows as the first attempt did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.arrow_values import python_values
from pipelines.domains.base import Domain
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.arrow_batches import arrow_schema, joined_tables
from pipelines.streaming import columns as C
from pipelines.validation.engine import get_validator

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MAX_ROWS_PER_CHUNK = 50_000
"""GX costs tens of milliseconds per call whatever the size, so Spark's Arrow batches are joined first."""

UNDECODABLE = "undecodable"
INVALID = "invalid"


def kafka_rows(raw: DataFrame) -> DataFrame:
    """Spark's Kafka source columns renamed to the source columns every later stage carries."""
    return raw.selectExpr(
        "topic AS src_topic",
        "partition AS src_partition",
        "offset AS src_offset",
        "timestamp AS src_timestamp",
        "key AS src_key",
        "value AS src_value",
    )


def decode_and_validate(raw: DataFrame, domain: Domain, decoder: RecordDecoder, suite_json: str) -> DataFrame:
    """Apply :class:`DecodeValidate` to Spark Kafka rows; output schema :func:`columns.decoded_schema`."""
    stage = DecodeValidate(domain, decoder, suite_json)
    return kafka_rows(raw).mapInArrow(stage, schema=C.decoded_schema(domain))


_NANOSECOND_RANGE_MS = 9_200_000_000_000
"""pandas timestamps are nanoseconds: epoch millis beyond about +-9.2e12 (year 2262) do not fit, and later
stages (the state function, Feast) hold event times in pandas."""


def event_time_array(millis: pd.Series) -> pa.Array:
    """Epoch millis as a UTC timestamp column; values pandas could not represent (only ever on rows GX already
    rejected) become null: the dead letter keeps the original bytes and the expectation that failed.

    Plain numpy arithmetic: ``pd.to_datetime(unit="ms")`` raised FloatingPointError on Spark's workers for
    float inputs mixing nulls and large values, where a null is the right answer.
    """
    numbers = pd.to_numeric(millis, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    representable = np.isfinite(numbers) & (np.abs(numbers) < _NANOSECOND_RANGE_MS)
    micros = np.where(representable, numbers, 0).astype("int64") * 1000
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=~representable)


class DecodeValidate:
    """The ``mapInArrow`` function; picklable (decoder and suite text travel to the executors)."""

    def __init__(
        self, domain: Domain, decoder: RecordDecoder, suite_json: str, max_rows: int = MAX_ROWS_PER_CHUNK
    ) -> None:
        self.domain = domain
        self.decoder = decoder
        self.suite_json = suite_json
        self.max_rows = max_rows
        self.event_columns = C.column_names(C.event_schema(domain))
        self.schema = arrow_schema(C.decoded_schema(domain))

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for chunk in joined_tables(batches, self.max_rows):
            yield from self.judge(chunk).to_batches()

    def judge(self, source: pa.Table) -> pa.Table:
        """Decode and validate one chunk of source rows (pure given the decoder and suite)."""
        decoded = self.decoder.decode_batch(python_values(source.column("src_value")))
        events = pd.DataFrame.from_records(
            [record if record is not None else {} for record in decoded.records],
            columns=self.event_columns,
        )
        # GX gets the epoch millis as decoded (the engine reads any int64 at millisecond resolution, so an absurd
        # event time is judged, not a crash); the output column is converted only after the verdicts.
        verdict = np.full(len(events), C.OK, dtype=object)
        reason = np.full(len(events), None, dtype=object)
        error = np.full(len(events), None, dtype=object)
        for i, decode_error in enumerate(decoded.errors):
            if decode_error is not None:
                verdict[i], reason[i], error[i] = C.DEAD_LETTER, f"{UNDECODABLE}:{decode_error.kind}", str(decode_error)

        decodable = np.flatnonzero(verdict == C.OK)
        if len(decodable):
            verdicts = get_validator(self.suite_json).validate(events.iloc[decodable], now=_clock(source))
            reasons = verdicts.reasons("; ")
            for position, valid, failed in zip(decodable, verdicts.valid, reasons, strict=True):
                if not valid:
                    verdict[position], reason[position], error[position] = C.DEAD_LETTER, INVALID, failed
        out: dict[str, pa.Array | pa.ChunkedArray] = {column: source.column(column) for column in C.SOURCE_COLUMNS}
        out.update({C.VERDICT: pa.array(verdict, pa.string()), C.REASON: pa.array(reason, pa.string())})
        out[C.ERROR] = pa.array(error, pa.string())
        for column in self.event_columns:
            kind = self.schema.field(column).type
            if column == self.domain.event_time_column:
                out[column] = event_time_array(events[column])
            else:
                out[column] = pa.Array.from_pandas(events[column], type=kind)
        return pa.table([out[name] for name in self.schema.names], schema=self.schema)


def _clock(source: pa.Table) -> datetime:
    """The chunk's validation time: its newest Kafka timestamp (UTC)."""
    newest = pc.max(source.column("src_timestamp")).as_py()
    if newest is None:  # Kafka always stamps records; a chunk without any timestamp is judged against now
        return datetime.now(UTC)
    return newest if newest.tzinfo is not None else newest.replace(tzinfo=UTC)
