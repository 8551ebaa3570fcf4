"""Validation as a Spark ``mapInPandas`` step, and the batch summary rebuilt from its output.

Use on a decoded micro-batch (inside ``foreachBatch``, or on the streaming frame itself)::

    suite_json = read_suite_json()                      # on the driver; executors get the text
    validate = partial(validate_batches_for_spark, suite_json=suite_json, now=batch_time)
    checked = decoded.mapInPandas(validate, schema=validation_output_schema(decoded.schema))
    valid, dead = checked.where("is_valid"), checked.where("NOT is_valid")
    summary = spark_batch_summary(checked, suite_json=suite_json, now=batch_time)   # one small aggregation

Input: any columns, among them every column the suite checks, with Spark types the suite's ``column_types``
can take: ``string`` columns StringType, ``double`` columns a numeric type, ``timestamp`` columns TimestampType
(the session time zone must be UTC, as featurestream's sessions set it) or a LongType of epoch milliseconds.
Output: the input columns unchanged, in order, then ``is_valid`` (boolean, never null) and
``failed_expectations`` (string, never null: "" when valid, else the failed expectation names joined by "; ").

``now`` should be fixed per micro-batch by the driver and stay the same if the batch is replayed, so a replay
dead-letters exactly the same rows; leaving it None uses each executor's clock, per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import pandas as pd

from pipelines.spark.pandas_batches import joined_batches
from pipelines.validation.engine import get_validator, loaded_suite
from pipelines.validation.results import ERROR_SUFFIX, REASON_SEPARATOR, BatchSummary, ExpectationOutcome

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql.types import StructType

VALID_COLUMN: Final = "is_valid"
REASONS_COLUMN: Final = "failed_expectations"

DEFAULT_MAX_ROWS: Final = 50_000
"""Rows validated per GX call. GX costs ~65 ms per call whatever the size, so Spark's 10,000-row Arrow
batches are joined up to this many rows first; 50,000 rows of this schema are about 10 MB of pandas."""


def validate_frame_for_spark(
    pdf: pd.DataFrame, *, now: datetime | None = None, suite_json: str | None = None
) -> pd.DataFrame:
    """``pdf`` with ``is_valid`` (bool) and ``failed_expectations`` (str) appended, as the module doc describes.

    One GX call per frame; ``pdf`` itself is left untouched. For ``mapInPandas`` prefer
    :func:`validate_batches_for_spark`, which joins Spark's small Arrow batches first.
    """
    verdicts = get_validator(suite_json).validate(pdf, now=now or datetime.now(UTC))
    out = pdf.copy(deep=False)
    out[VALID_COLUMN] = verdicts.valid
    out[REASONS_COLUMN] = verdicts.reasons(REASON_SEPARATOR)
    return out


def validate_batches_for_spark(
    batches: Iterable[pd.DataFrame],
    *,
    now: datetime | None = None,
    suite_json: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` function: validates the partition's batches, joined up to ``max_rows`` per GX call.

    Order is kept and every input row comes out exactly once, so records read = valid + dead-lettered.
    """
    for frame in joined_batches(batches, max_rows):
        yield validate_frame_for_spark(frame, now=now, suite_json=suite_json)


def validation_output_schema(input_schema: StructType) -> StructType:
    """The schema ``mapInPandas`` needs: the input's fields plus the two verdict columns."""
    from pyspark.sql.types import BooleanType, StringType, StructField, StructType

    taken = {field.name for field in input_schema.fields} & {VALID_COLUMN, REASONS_COLUMN}
    if taken:
        raise ValueError(f"the input already has columns named {sorted(taken)}")
    return StructType(
        [
            *input_schema.fields,
            StructField(VALID_COLUMN, BooleanType(), nullable=False),
            StructField(REASONS_COLUMN, StringType(), nullable=False),
        ]
    )


def spark_batch_summary(
    validated: SparkDataFrame, *, suite_json: str | None = None, now: datetime | None = None
) -> BatchSummary:
    """The micro-batch's summary from the verdict columns, with one aggregation and a tiny collect.

    Executors validate chunk by chunk and return rows only, so the batch-level counts are rebuilt here from
    GX's per-row verdicts (one row per distinct reason string reaches the driver). ``success`` means no row
    failed; an expectation GX could not evaluate shows as ``error``.
    """
    from great_expectations import __version__ as gx_version
    from pyspark.sql import functions as F

    suite = loaded_suite(suite_json)
    counts = validated.groupBy(REASONS_COLUMN).agg(F.count(F.lit(1)).alias("rows")).collect()
    evaluated = sum(int(row["rows"]) for row in counts)
    valid = sum(int(row["rows"]) for row in counts if not row[REASONS_COLUMN])
    unexpected = dict.fromkeys(suite.expectation_names, 0)
    errored: set[str] = set()
    for row in counts:
        for reason in filter(None, str(row[REASONS_COLUMN] or "").split(REASON_SEPARATOR)):
            name = reason.removesuffix(ERROR_SUFFIX)
            if name != reason:
                errored.add(name)
            if name in unexpected:
                unexpected[name] += int(row["rows"])
    outcomes = tuple(
        ExpectationOutcome(
            name=expectation.name,
            type=expectation.type,
            columns=expectation.columns,
            success=unexpected[expectation.name] == 0,
            unexpected_count=unexpected[expectation.name],
            error="could not be evaluated on some rows (see executor logs)" if expectation.name in errored else None,
        )
        for expectation in suite.expectations
    )
    return BatchSummary(
        suite_name=suite.name,
        validation_time=now,
        evaluated_rows=evaluated,
        valid_rows=valid,
        success=all(outcome.success for outcome in outcomes),
        expectations=outcomes,
        gx_version=str(gx_version),
    )
