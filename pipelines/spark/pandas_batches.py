"""Join the small pandas batches Spark's Python stages receive into larger ones.

``mapInPandas`` hands over Arrow batches of ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (10,000 by
default). Stages with a fixed cost per call (a GX validation run, a decoder pass) join them first; order is
kept and every row comes out exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pandas as pd


def joined_batches(batches: Iterable[pd.DataFrame], max_rows: int) -> Iterator[pd.DataFrame]:
    """Consecutive batches concatenated up to ``max_rows`` rows (a single larger batch passes alone)."""
    pending: list[pd.DataFrame] = []
    rows = 0
    for batch in batches:
        if pending and rows + len(batch) > max_rows:
            yield _joined(pending)
            pending, rows = [], 0
        pending.append(batch)
        rows += len(batch)
    if pending:
        yield _joined(pending)


def _joined(batches: list[pd.DataFrame]) -> pd.DataFrame:
    return batches[0] if len(batches) == 1 else pd.concat(batches, ignore_index=True)
