"""Run a GX suite over one pandas batch and turn GX's results into per-row verdicts.

GX does the judging: every verdict comes from the ``unexpected_index_list`` GX returns for each expectation
with ``result_format="COMPLETE"``. This module only prepares the frame so GX compares like with like, and
keeps GX's set-up out of the per-batch path:

- one ephemeral context, pandas data source, dataframe asset and whole-dataframe batch definition per suite
  and process (Spark reuses Python workers, so an executor builds them once); nothing is written to disk;
- GX is shown only the columns the suite reads, under a fresh ``RangeIndex``, in consolidated blocks: GX
  fingerprints (hashes) every frame it is given, so extra columns cost time, a plain positional index makes
  GX report row positions, and pandas would otherwise re-consolidate loose columns on every GX filter;
- the result format skips what we would throw away (unexpected values, partial lists, the pandas "query").

Measured on this 2-core machine (``benchmarks/validation_throughput.py``): about 27 ms of CPU per call
whatever the size, as GX builds a metric graph per expectation (115 ms before GX's rebuilds of each expectation's
arguments, the 430 embedded ISO codes included, and of the metric arguments' ids were memoised for the span of a
call: :mod:`pipelines.validation.gx_memo`); plus about 2-3 µs per row, a fifth of it GX hashing the frame twice
for its batch fingerprint. Callers amortise the fixed part by validating large
batches (:func:`pipelines.validation.spark.validate_batches_for_spark` joins Spark's Arrow batches).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.validation import gx_memo
from pipelines.validation.errors import GXResultError, InputFrameError, SuiteLoadError
from pipelines.validation.results import ERROR_SUFFIX, BatchSummary, ExpectationOutcome, RowVerdicts
from pipelines.validation.suite import ColumnType, LoadedSuite, expectation_name, load_suite, read_suite_json

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

logger = logging.getLogger(__name__)

VALIDATION_TIME_PARAMETER: Final = "validation_time"
"""The one suite parameter the validator supplies: the batch's "now", a UTC datetime.

Suites build time-relative bounds from it with GX's own parameter expressions, e.g.
``{"$PARAMETER": "validation_time + timedelta(days=1)"}``; the tolerance lives in the suite, not here.
"""

RESULT_FORMAT: Final[Mapping[str, Any]] = {
    "result_format": "COMPLETE",  # the only format whose unexpected_index_list is not truncated
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}

_EPOCH_MILLIS_LIMIT = 9.2e18  # keeps a garbage epoch-millis value inside int64 instead of wrapping around


_GX_LOCK = threading.Lock()
"""GX evaluates suite parameters with a module-global parser, so GX calls are serialised process-wide."""


class SuiteValidator:
    """A loaded suite bound to its own GX ephemeral context; validate as many batches as you like.

    Safe to share between threads (GX calls take a process-wide lock). Build it through
    :func:`get_validator` to share one per process.
    """

    def __init__(self, suite_json: str) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.suite: LoadedSuite = load_suite(suite_json)
        self._by_name = {expectation.name: expectation for expectation in self.suite.expectations}
        self._gx_version = str(gx.__version__)
        context = gx.get_context(mode="ephemeral")
        # tqdm bars on every batch would flood executor logs.
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas(f"featurestream-{self.suite.name}").add_dataframe_asset("batches")
        self._batch_definition = asset.add_batch_definition_whole_dataframe("each-batch")
        gx_memo.install()
        self._check_suite_runs()

    def validate(self, df: pd.DataFrame, *, now: datetime) -> RowVerdicts:
        """Judge every row of ``df`` with the suite; ``now`` is the suite's ``validation_time`` parameter.

        Row order and count are kept: ``verdicts.valid[i]`` is about ``df.iloc[i]``, whatever ``df``'s index.
        """
        validation_time = _utc_instant(now)
        frame = self.prepare_frame(df)
        expectation_parameters = {VALIDATION_TIME_PARAMETER: validation_time}
        with _GX_LOCK, gx_memo.memoised_configurations():
            batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(
                self.suite.suite, result_format=dict(RESULT_FORMAT), expectation_parameters=expectation_parameters
            )
        return self._verdicts(result, rows=len(frame), validation_time=validation_time)

    def prepare_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The frame GX sees: the suite's columns only, in their declared types, indexed 0..n-1.

        Converting types is not judging: a ``double`` column becomes float64 and a ``timestamp`` column a UTC
        datetime (naive values are taken as UTC, numbers as epoch milliseconds), so GX's comparisons run
        vectorised and never mix naive and aware times. Values that are null stay null.
        """
        missing = [column for column in self.suite.columns if column not in df.columns]
        if missing:
            raise InputFrameError(f"the frame lacks columns the suite {self.suite.name!r} checks: {missing}")
        data = {}
        for column in self.suite.columns:
            series = df[column]
            if isinstance(series, pd.DataFrame):
                raise InputFrameError(f"the frame has more than one column named {column!r}")
            data[column] = _as_column_type(series, self.suite.column_types[column], column).array
        # Copying into consolidated blocks (one per dtype) costs ~0.1 µs a row once; GX filters and copies the
        # frame per expectation, and pandas re-consolidates a frame of loose columns on each of those: a third
        # of the per-row cost at 100,000 rows when measured.
        return pd.DataFrame(data, index=pd.RangeIndex(len(df)), copy=True)

    def _check_suite_runs(self) -> None:
        """Validate an empty frame once, so a broken parameter expression fails at start-up, not on data."""
        empty = pd.DataFrame({column: pd.Series([], dtype=object) for column in self.suite.columns})
        try:
            verdicts = self.validate(empty, now=datetime.now(UTC))
        except SuiteLoadError:
            raise
        except Exception as exc:  # GX raises SuiteParameterError and friends outside its result objects
            raise SuiteLoadError(f"GX cannot run the suite {self.suite.name!r}: {exc}") from exc
        broken = [outcome for outcome in verdicts.summary.expectations if outcome.error]
        if broken:
            raise SuiteLoadError(f"GX cannot evaluate {broken[0].name}: {broken[0].error}")

    def _verdicts(
        self, result: ExpectationSuiteValidationResult, *, rows: int, validation_time: datetime
    ) -> RowVerdicts:
        valid = np.ones(rows, dtype=bool)
        failing_rows: dict[str, npt.NDArray[np.intp]] = {}
        outcomes: dict[str, ExpectationOutcome] = {}
        for expectation_result in result.results:
            config = expectation_result.expectation_config
            if config is None:
                raise GXResultError("GX returned a result without its expectation")
            name = expectation_name(config.type, config.kwargs)
            expectation = self._by_name.get(name)
            if expectation is None:
                raise GXResultError(f"GX returned a result for {name}, which is not in the suite")
            details = expectation_result.result or {}
            error = None
            if "unexpected_index_list" in details:
                positions = np.asarray(details["unexpected_index_list"], dtype=np.intp)
                if len(positions) != details.get("unexpected_count", len(positions)):
                    raise GXResultError(f"GX listed {len(positions)} rows for {name} but counted a different number")
            else:
                # GX could not evaluate the rule on this batch (it caught an exception): no row can be called
                # valid for it, so all of them go to the dead-letter topic rather than through unchecked.
                error = _exception_message(expectation_result.exception_info)
                positions = np.arange(rows, dtype=np.intp)
                logger.warning("GX could not evaluate %s on %d rows, all dead-lettered: %s", name, rows, error)
            valid[positions] = False
            failing_rows[name] = positions
            outcomes[name] = ExpectationOutcome(
                name=name,
                type=expectation.type,
                columns=expectation.columns,
                success=bool(expectation_result.success),
                unexpected_count=len(positions),
                error=error,
            )

        failures: dict[int, list[str]] = {}
        for expectation in self.suite.expectations:  # suite order, so reasons read the same on every row
            failing = failing_rows.get(expectation.name)
            if failing is None:
                raise GXResultError(f"GX returned no result for {expectation.name}")
            reason = expectation.name if outcomes[expectation.name].error is None else expectation.name + ERROR_SUFFIX
            for position in failing.tolist():
                failures.setdefault(position, []).append(reason)

        summary = BatchSummary(
            suite_name=self.suite.name,
            validation_time=validation_time,
            evaluated_rows=rows,
            valid_rows=int(valid.sum()),
            success=bool(result.success),
            expectations=tuple(outcomes[expectation.name] for expectation in self.suite.expectations),
            gx_version=self._gx_version,
        )
        return RowVerdicts(
            valid=valid, failures={position: tuple(names) for position, names in failures.items()}, summary=summary
        )


@lru_cache(maxsize=8)
def get_validator(suite_json: str | None = None) -> SuiteValidator:
    """The process-wide validator for a suite (the transactions suite when ``suite_json`` is None).

    The GX context and everything it loaded live as long as the process: they are moved out of the garbage
    collector's scans (``gc.freeze``), since pyspark runs a full collection after every task of a Spark worker.
    """
    validator = SuiteValidator(suite_json if suite_json is not None else _default_suite_json())
    gc.freeze()
    return validator


def loaded_suite(suite_json: str | None = None) -> LoadedSuite:
    """The suite alone (no GX context): enough for code that only needs its names, e.g. on the driver."""
    return load_suite(suite_json if suite_json is not None else _default_suite_json())


@lru_cache(maxsize=1)
def _default_suite_json() -> str:
    return read_suite_json()


def validate_rows(df: pd.DataFrame, *, now: datetime, suite_json: str | None = None) -> RowVerdicts:
    """Validate one pandas batch with the (cached) suite; see :meth:`SuiteValidator.validate`."""
    return get_validator(suite_json).validate(df, now=now)


def _utc_instant(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InputFrameError("now must be timezone-aware: a naive time would silently shift every time bound")
    # A plain datetime (microseconds): GX renders parameters through str() inside its expression parser.
    return pd.Timestamp(now).tz_convert("UTC").floor("us").to_pydatetime()


def _as_column_type(series: pd.Series, column_type: ColumnType, column: str) -> pd.Series:
    if column_type == "timestamp":
        return _as_utc_timestamps(series, column)
    if column_type == "double":
        return _as_float64(series, column)
    return series


def _as_utc_timestamps(series: pd.Series, column: str) -> pd.Series:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series if str(dtype.tz) == "UTC" else series.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(dtype):
        return series.dt.tz_localize("UTC")  # Spark hands timestamps over naive, in its session zone (UTC)
    if pd.api.types.is_bool_dtype(dtype):
        raise InputFrameError(f"column {column!r} is boolean, not a timestamp")
    if pd.api.types.is_numeric_dtype(dtype):
        return _epoch_millis_to_utc(series)
    try:
        return pd.to_datetime(series, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputFrameError(f"column {column!r} ({dtype}) holds values that are not timestamps: {exc}") from exc


def _epoch_millis_to_utc(series: pd.Series) -> pd.Series:
    # Millisecond resolution keeps any int64 value representable (nanoseconds would overflow past 2262, and a
    # far-future event time is exactly the kind of bad input that must reach GX, not crash the batch).
    millis = series.to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(millis)
    whole = np.clip(np.where(missing, 0.0, millis), -_EPOCH_MILLIS_LIMIT, _EPOCH_MILLIS_LIMIT).astype("int64")
    instants = whole.view("datetime64[ms]")
    instants[missing] = np.datetime64("NaT")
    return pd.Series(instants, copy=False).dt.tz_localize("UTC")


def _as_float64(series: pd.Series, column: str) -> pd.Series:
    dtype = series.dtype
    if dtype == np.float64:
        return series
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), copy=False)
    try:
        return pd.Series(pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=np.nan))
    except (ValueError, TypeError) as exc:
        raise InputFrameError(f"column {column!r} ({dtype}) holds values that are not numbers: {exc}") from exc


def _exception_message(exception_info: Any) -> str:
    """GX nests exception details differently per failure site; dig out the first message."""
    if isinstance(exception_info, Mapping):
        message = exception_info.get("exception_message")
        if message:
            return str(message)
        for value in exception_info.values():
            nested = getattr(value, "exception_message", None) or (
                _exception_message(value) if isinstance(value, Mapping) else None
            )
            if nested:
                return str(nested)
    message = getattr(exception_info, "exception_message", None)
    return str(message) if message else "GX could not evaluate this expectation"
