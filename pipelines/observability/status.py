"""What `featurestream status` shows, built from a scrape of the job's ``/metrics`` or from its run log.

:func:`status_from_exposition` (pure: exposition text in, :class:`PipelineStatus` out) reads exactly the names
:mod:`pipelines.observability.metrics` exposes; :func:`scrape` is the only I/O, and says clearly when nothing
answers. :func:`status_from_run_log` gives the same view, minus what only a live job knows (rates from
Spark, lag, state size), for a job that has stopped.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from pipelines.observability import metrics as m
from pipelines.observability.errors import MetricsEndpointError
from pipelines.observability.run_log import RunLogEntry, latest_per_batch


@dataclass
class QueryStatus:
    """One streaming query as the metrics see it."""

    name: str
    active: bool | None = None
    input_rate: float | None = None
    processing_rate: float | None = None
    last_batch_id: int | None = None
    batches: int = 0
    records_read: int = 0
    valid: int = 0
    scores: int = 0
    state_rows: int | None = None
    state_memory_bytes: int | None = None


@dataclass
class PipelineStatus:
    """Everything the status command prints; empty parts mean the job did not report them (yet)."""

    source: str
    queries: dict[str, QueryStatus] = field(default_factory=dict)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    drift: dict[str, tuple[float | None, bool]] = field(default_factory=dict)
    """feature -> (PSI, currently over a threshold)."""
    quality: dict[str, float | None] = field(default_factory=dict)
    freshness_s: dict[str, float] = field(default_factory=dict)
    alerts: int = 0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


_QUALITY = {
    m.LIVE_LABELLED: "labelled",
    m.LIVE_PRECISION: "precision",
    m.LIVE_RECALL: "recall",
    m.LIVE_ROC_AUC: "roc_auc",
}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def status_from_exposition(text: str, source: str = "metrics") -> PipelineStatus:
    """Read the pipeline's metrics out of a ``/metrics`` text."""
    status = PipelineStatus(source=source)

    def query(labels: dict[str, str]) -> QueryStatus:
        name = labels.get("query", "?")
        return status.queries.setdefault(name, QueryStatus(name))

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == m.RECORDS_READ:
                query(labels).records_read += int(value)
            elif name == m.RECORDS_VALID:
                query(labels).valid += int(value)
            elif name == m.SCORES_PUBLISHED:
                query(labels).scores += int(value)
            elif name == m.BATCHES:
                query(labels).batches += int(value)
            elif name == m.RECORDS_DEAD_LETTERED:
                reason = labels.get("reason", "?")
                status.dead_letters[reason] = status.dead_letters.get(reason, 0) + int(value)
            elif name == m.QUERY_ACTIVE:
                query(labels).active = value >= 1
            elif name == m.INPUT_RATE:
                query(labels).input_rate = _number(value)
            elif name == m.PROCESSING_RATE:
                query(labels).processing_rate = _number(value)
            elif name == m.LAST_BATCH_ID:
                query(labels).last_batch_id = int(value)
            elif name == m.STATE_ROWS:
                q = query(labels)
                q.state_rows = (q.state_rows or 0) + int(value)
            elif name == m.STATE_MEMORY:
                q = query(labels)
                q.state_memory_bytes = (q.state_memory_bytes or 0) + int(value)
            elif name == m.CONSUMER_LAG:
                status.lag[(labels.get("topic", "?"), int(labels.get("partition", "-1")))] = int(value)
            elif name == m.MODEL_VERSION:
                status.models[labels.get("model_name", "?")] = int(value)
            elif name == m.DRIFT_PSI:
                feature = labels.get("feature", "?")
                status.drift[feature] = (_number(value), status.drift.get(feature, (None, False))[1])
            elif name == m.DRIFT_ACTIVE:
                feature = labels.get("feature", "?")
                status.drift[feature] = (status.drift.get(feature, (None, False))[0], value >= 1)
            elif name in _QUALITY:
                status.quality[_QUALITY[name]] = _number(value)
            elif name == m.FEATURE_FRESHNESS:
                status.freshness_s[labels.get("view", "?")] = value
            elif name == m.ALERTS:
                status.alerts += int(value)
    return status


def status_from_run_log(entries: Sequence[RunLogEntry], source: str) -> PipelineStatus:
    """The same view from a run log: totals over its batches, the latest model, drift and quality."""
    status = PipelineStatus(source=source)
    batches = latest_per_batch(entries)
    if not batches:
        return status
    q = QueryStatus(name="(run log)", active=None)
    for entry in batches:
        q.records_read += entry.records_read
        q.valid += entry.valid
        q.scores += entry.scored
        for reason, count in entry.dead_letters_by_reason.items():
            status.dead_letters[reason] = status.dead_letters.get(reason, 0) + count
    last = batches[-1]
    q.batches = len(batches)
    q.last_batch_id = last.batch_id
    q.input_rate = last.input_rows_per_second
    q.processing_rate = last.processed_rows_per_second
    status.queries[q.name] = q
    scored_by = next(((e.model_name, e.model_version) for e in reversed(batches) if e.model_version is not None), None)
    if scored_by is not None:  # the latest batch that scored: a later one may have had nothing to score
        status.models[scored_by[0] or ""] = scored_by[1]
    for entry in batches:
        for feature, values in entry.drift.items():
            status.drift[feature] = (values.get("psi"), bool(values.get("drifting")))
    quality = next((e.quality for e in reversed(batches) if e.quality.get("labelled")), {})
    status.quality = {k: (None if v is None else float(v)) for k, v in quality.items()}
    return status


def metrics_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/metrics"


def scrape(url: str, timeout_s: float = 3.0) -> str:
    """The exposition text at ``url``; :class:`MetricsEndpointError` if nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MetricsEndpointError(f"no metrics endpoint answers at {url} ({reason})") from exc
