"""Row-level validation of decoded records with Great Expectations (GX Core 1.x).

The suite JSON in ``schemas/`` is the single source of truth; GX loads it and GX judges every row. This
package turns GX's per-expectation ``unexpected_index_list`` into what a streaming job needs: a valid/invalid
verdict and the failed expectation names for every row (the dead-letter reason), and a JSON batch summary.

- ``suite``: load the suite with GX's serializer and read our column contract from its ``meta``.
- ``engine``: one cached GX ephemeral context per suite and process; :func:`validate_rows`.
- ``results``: :class:`RowVerdicts` and :class:`BatchSummary`.
- ``spark``: the ``mapInPandas`` step and the micro-batch summary.
- ``reference``: keep the suite's embedded code lists equal to ``schemas/reference/*.txt``.

Importing the package does not import GX (a 3-second import); the first validation does.
"""

from pipelines.validation.engine import (
    VALIDATION_TIME_PARAMETER,
    SuiteValidator,
    get_validator,
    loaded_suite,
    validate_rows,
)
from pipelines.validation.errors import DataValidationError, GXResultError, InputFrameError, SuiteLoadError
from pipelines.validation.results import REASON_SEPARATOR, BatchSummary, ExpectationOutcome, RowVerdicts
from pipelines.validation.spark import (
    REASONS_COLUMN,
    VALID_COLUMN,
    spark_batch_summary,
    validate_batches_for_spark,
    validate_frame_for_spark,
    validation_output_schema,
)
from pipelines.validation.suite import TRANSACTIONS_SUITE_PATH, LoadedSuite, load_suite, read_suite_json

__all__ = [
    "REASONS_COLUMN",
    "REASON_SEPARATOR",
    "TRANSACTIONS_SUITE_PATH",
    "VALIDATION_TIME_PARAMETER",
    "VALID_COLUMN",
    "BatchSummary",
    "DataValidationError",
    "ExpectationOutcome",
    "GXResultError",
    "InputFrameError",
    "LoadedSuite",
    "RowVerdicts",
    "SuiteLoadError",
    "SuiteValidator",
    "get_validator",
    "load_suite",
    "loaded_suite",
    "read_suite_json",
    "spark_batch_summary",
    "validate_batches_for_spark",
    "validate_frame_for_spark",
    "validate_rows",
    "validation_output_schema",
]
