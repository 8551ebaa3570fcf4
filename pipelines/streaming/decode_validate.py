"""The stateless first stage: Kafka rows -> decoded events with a verdict (ok, or dead letter and why).

Runs as ``mapInPandas`` on the executors. Decoding uses the subject's :class:`RecordDecoder` (both wire formats,
schema evolution); validation uses the Great Expectations suite in ``schemas/`` through
:mod:`pipelines.validation`. Every input row comes out exactly once, in order: bad input is data, not an
exception, so the query never stops on it.

The validation clock is the largest Kafka timestamp of the chunk rather than the executor's wall clock, so a
replayed micro-batch judges exactly the same rows as the first attempt did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.domains.base import Domain
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.pandas_batches import joined_batches
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
    return kafka_rows(raw).mapInPandas(stage, schema=C.decoded_schema(domain))


_NANOSECOND_RANGE_MS = 9_200_000_000_000
"""pandas timestamps are nanoseconds: epoch millis beyond about +-9.2e12 (year 2262) do not fit."""


def event_times(millis: pd.Series) -> pd.Series:
    """Epoch millis as UTC timestamps; values pandas cannot represent (only ever on rows GX already rejected)
    become null: the dead letter keeps the original bytes and the expectation that failed.

    Converted with numpy, not ``pd.to_datetime(unit="ms")``: pandas 2.2 raises FloatingPointError on some
    float inputs mixing nulls and large values (seen on real batches), where a null is the right answer.
    """
    numbers = pd.to_numeric(millis, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    representable = np.isfinite(numbers) & (np.abs(numbers) < _NANOSECOND_RANGE_MS)
    instants = np.where(representable, numbers, 0).astype("int64").astype("datetime64[ms]").astype("datetime64[ns]")
    instants[~representable] = np.datetime64("NaT")
    return pd.Series(instants, index=millis.index, copy=False).dt.tz_localize("UTC")


class DecodeValidate:
    """The ``mapInPandas`` function; picklable (decoder and suite text travel to the executors)."""

    def __init__(
        self, domain: Domain, decoder: RecordDecoder, suite_json: str, max_rows: int = MAX_ROWS_PER_CHUNK
    ) -> None:
        self.domain = domain
        self.decoder = decoder
        self.suite_json = suite_json
        self.max_rows = max_rows
        self.event_columns = C.column_names(C.event_schema(domain))
        self.output_columns = C.column_names(C.decoded_schema(domain))

    def __call__(self, batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in joined_batches(batches, self.max_rows):
            yield self.judge(chunk.reset_index(drop=True))

    def judge(self, source: pd.DataFrame) -> pd.DataFrame:
        """Decode and validate one chunk of source rows (pure given the decoder and suite)."""
        decoded = self.decoder.decode_batch(source["src_value"].tolist())
        events = pd.DataFrame.from_records(
            [record if record is not None else {} for record in decoded.records],
            columns=self.event_columns,
        )
        # GX gets the epoch millis as decoded (the engine reads any int64 at millisecond resolution, so an absurd
        # event time is judged, not a crash); the output column is converted only after the verdicts.
        verdict = np.full(len(source), C.OK, dtype=object)
        reason = np.full(len(source), None, dtype=object)
        error = np.full(len(source), None, dtype=object)
        for i, decode_error in enumerate(decoded.errors):
            if decode_error is not None:
                verdict[i], reason[i], error[i] = C.DEAD_LETTER, f"{UNDECODABLE}:{decode_error.kind}", str(decode_error)

        decodable = np.flatnonzero(verdict == C.OK)
        if len(decodable):
            now = pd.Timestamp(source["src_timestamp"].max())
            now = now.tz_localize("UTC") if now.tzinfo is None else now
            verdicts = get_validator(self.suite_json).validate(events.iloc[decodable], now=now.to_pydatetime())
            reasons = verdicts.reasons("; ")
            for position, valid, failed in zip(decodable, verdicts.valid, reasons, strict=True):
                if not valid:
                    verdict[position], reason[position], error[position] = C.DEAD_LETTER, INVALID, failed
        out: dict[str, Any] = {column: source[column].to_numpy() for column in C.SOURCE_COLUMNS}
        out.update({C.VERDICT: verdict, C.REASON: reason, C.ERROR: error})
        events[self.domain.event_time_column] = event_times(events[self.domain.event_time_column])
        for column in self.event_columns:
            # Series, not .to_numpy(): a tz-aware column would become an object array of Timestamps, built row
            # by row (measured: the costliest line of this stage).
            out[column] = events[column]
        return pd.DataFrame(out, columns=self.output_columns)
