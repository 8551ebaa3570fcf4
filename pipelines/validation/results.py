"""What validating a batch returns: per-row verdicts, and a batch summary that is kept as JSON.

Both are plain data built from GX's results, so the Spark job, the dead-letter writer and tests can use them
without touching GX. Row failures are stored sparsely (row position -> reasons): on real traffic almost every
row is valid, and 50,000 empty lists per batch would cost more than the rest of the bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

REASON_SEPARATOR = "; "
ERROR_SUFFIX = " (error)"
"""Appended to a reason when GX could not evaluate the expectation at all (every row of that batch fails it)."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation over one batch: how many rows it rejected, or why GX could not evaluate it."""

    name: str
    type: str
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int
    error: str | None = None


@dataclass(frozen=True)
class BatchSummary:
    """Batch-level validation result; ``to_json()`` is what the job writes into the batch's folder.

    ``success`` is GX's own verdict for the batch (it honours ``mostly``); ``invalid_rows`` counts rows that
    failed at least one expectation and therefore went to the dead-letter topic.
    """

    suite_name: str
    validation_time: datetime | None
    evaluated_rows: int
    valid_rows: int
    success: bool
    expectations: tuple[ExpectationOutcome, ...]
    gx_version: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def invalid_rows(self) -> int:
        return self.evaluated_rows - self.valid_rows

    @property
    def unexpected_counts(self) -> dict[str, int]:
        return {outcome.name: outcome.unexpected_count for outcome in self.expectations}

    def to_json_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["validation_time"] = self.validation_time.isoformat() if self.validation_time else None
        document["invalid_rows"] = self.invalid_rows
        document["meta"] = dict(self.meta)
        for outcome in document["expectations"]:
            outcome["columns"] = list(outcome["columns"])
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2, sort_keys=True, default=str)


@dataclass(frozen=True)
class RowVerdicts:
    """For every row of the validated frame, in order: valid or not, and the expectations it failed.

    ``valid[i]`` is False exactly when ``failures`` has an entry for row position ``i``; its reasons are the
    names of the failed expectations in suite order (``expect_column_values_to_be_in_set(currency)``).
    """

    valid: npt.NDArray[np.bool_]
    failures: Mapping[int, tuple[str, ...]]
    summary: BatchSummary

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def valid_count(self) -> int:
        return int(self.valid.sum())

    @property
    def invalid_positions(self) -> list[int]:
        return sorted(self.failures)

    @property
    def failed_expectations(self) -> list[list[str]]:
        """Per row, the failed expectation names (empty for a valid row)."""
        return [list(self.failures.get(position, ())) for position in range(len(self.valid))]

    def reasons(self, separator: str = REASON_SEPARATOR) -> npt.NDArray[np.object_]:
        """Per row, the failed names joined by ``separator`` ("" for a valid row): the dead-letter reason."""
        out = np.full(len(self.valid), "", dtype=object)
        for position, names in self.failures.items():
            out[position] = separator.join(names)
        return out
