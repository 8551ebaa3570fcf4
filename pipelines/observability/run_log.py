"""The run log: one JSON line per micro-batch, what `featurestream report` and `status` read after the fact.

The format is a superset of the batch writer's ``BatchRecord`` lines (``<state_dir>/runs/<query>/batches.jsonl``):
the same names for the same counts, plus the time, the rates Spark reported, latency percentiles and bucket
counts, score histogram counts, drift values and live quality. So a log written before those were wired still
reads (the missing parts are empty), and one file can serve both. Keys this version does not know are kept in
``extra``, not dropped. One line per batch::

    {"batch_id": 7, "time": "2026-01-01T12:00:03.120000+00:00", "records_read": 5000, "valid": 4950,
     "dead_lettered": 50, "dead_letters_by_reason": {"invalid": 30, "undecodable:garbage": 20},
     "online_written": {"card_features": 1800}, "offline_rows": {"card_features": 4950}, "scored": 4950,
     "model_name": "fraud_xgb", "model_version": 3, "seconds": 4.2, "stage_seconds": {"compute": 3.0},
     "input_rows_per_second": 2500.0, "processed_rows_per_second": 1190.5,
     "latency_seconds": {"p50": 1.8, "p95": 3.9, "p99": 4.6}, "latency_counts": [0, 0, ...],
     "score_counts": [4100, 300, ...], "drift": {"card_amount_sum_1h": {"psi": 0.03, "ks_statistic": 0.02,
     "ks_pvalue": 0.4}}, "quality": {"labelled": 800, "precision": 0.91, "recall": 0.84, "roc_auc": 0.97}}

``latency_counts`` use :data:`~pipelines.observability.histograms.LATENCY_BUCKETS` and ``score_counts``
:data:`~pipelines.observability.histograms.SCORE_BUCKETS` (one count more than bounds, the last above all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.observability.errors import RunLogError
from pipelines.observability.histograms import LATENCY_BUCKETS, histogram_quantile

RUN_LOG_NAME = "batches.jsonl"
LATENCY_QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def default_run_log(settings: Settings) -> Path:
    """The job's batch log: ``<state_dir>/runs/<query>/batches.jsonl``."""
    return settings.stack.state_dir / "runs" / settings.stream.query_name / RUN_LOG_NAME


@dataclass
class RunLogEntry:
    """One micro-batch of a run (see the module docstring for the line format)."""

    batch_id: int
    time: str | None = None
    records_read: int = 0
    valid: int = 0
    dead_lettered: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    online_written: dict[str, int] = field(default_factory=dict)
    offline_rows: dict[str, int] = field(default_factory=dict)
    scored: int = 0
    model_name: str | None = None
    model_version: int | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    input_rows_per_second: float | None = None
    processed_rows_per_second: float | None = None
    latency_seconds: dict[str, float | None] = field(default_factory=dict)
    latency_counts: list[int] = field(default_factory=list)
    score_counts: list[int] = field(default_factory=list)
    drift: dict[str, dict[str, float | None]] = field(default_factory=dict)
    quality: dict[str, float | int | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished_at(self) -> datetime | None:
        if not self.time:
            return None
        try:
            return datetime.fromisoformat(self.time)
        except ValueError:
            return None

    def to_json(self) -> str:
        document = asdict(self)
        extra = document.pop("extra")
        return json.dumps(_finite({**extra, **document}), allow_nan=False, default=_jsonable)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RunLogEntry:
        known = {f.name for f in fields(cls)} - {"extra"}
        if "batch_id" not in document:
            raise ValueError("no batch_id")
        values = {key: value for key, value in document.items() if key in known}
        extra = {key: value for key, value in document.items() if key not in known}
        return cls(**values, extra=extra)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers, and a reader should not have to guess."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _jsonable(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def latency_percentiles(counts: Sequence[int], bounds: Sequence[float] = LATENCY_BUCKETS) -> dict[str, float | None]:
    """p50 / p95 / p99 from latency bucket counts (PromQL's interpolation), for the run log and the report."""
    return {name: histogram_quantile(q, bounds, counts) for name, q in LATENCY_QUANTILES}


def entry_from_batch(
    record: Any,
    *,
    now: datetime | None = None,
    **additions: Any,
) -> RunLogEntry:
    """A run-log entry from the batch writer's ``BatchRecord`` (a dataclass) plus what else the batch knows.

    ``additions`` are :class:`RunLogEntry` fields (``latency_counts``, ``score_counts``, ``drift``, ...); when
    ``latency_counts`` is given and ``latency_seconds`` is not, the percentiles are computed from it.
    """
    document = asdict(record) if is_dataclass(record) and not isinstance(record, type) else dict(record)
    document.update(additions)
    document.setdefault("time", (now or datetime.now(UTC)).isoformat())
    if document.get("latency_counts") and not document.get("latency_seconds"):
        document["latency_seconds"] = latency_percentiles(document["latency_counts"])
    return RunLogEntry.from_dict(document)


class RunLogWriter:
    """Appends entries, one line each, flushed per line so a crash loses at most the line being written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, entry: RunLogEntry) -> None:
        with self.path.open("a", encoding="utf-8") as log:
            log.write(entry.to_json() + "\n")


def read_run_log(path: Path) -> list[RunLogEntry]:
    """Every entry of a run log, in file order. A truncated *last* line (a crash mid-write) is skipped; any
    other line that does not parse is an error naming its line number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RunLogError(f"no run log at {path} (has the streaming job run with this state directory?)") from None
    entries = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            entries.append(RunLogEntry.from_dict(document))
        except (ValueError, TypeError) as exc:
            if number == last:
                break
            raise RunLogError(f"{path}:{number + 1}: not a run-log line: {exc}") from exc
    return entries


def latest_per_batch(entries: Iterable[RunLogEntry]) -> list[RunLogEntry]:
    """One entry per batch id, the last written (Spark replays a batch after a crash), in batch-id order."""
    by_id: dict[int, RunLogEntry] = {}
    for entry in entries:
        by_id[entry.batch_id] = entry
    return [by_id[key] for key in sorted(by_id)]
