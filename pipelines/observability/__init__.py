"""Watching the pipeline run: Prometheus metrics, drift, live quality, alerts, the run log and its report.

The streaming job uses one handle, :class:`StreamObserver` (``observer``): its listener for Spark's progress
and ``after_batch`` once per micro-batch, with the partitions' :class:`PartitionObservations`
(``batch_observations``). Underneath, one job per module, pure transforms apart from I/O:

- ``metrics`` (:class:`PipelineMetrics`, the metric names) and ``listener`` (Spark's progress into it),
  ``progress`` (Spark's progress JSON reduced to numbers), ``histograms`` (bucket counts partitions can merge);
- ``drift`` (PSI/KS, the training baseline, the rolling :class:`DriftMonitor`), ``alerts`` (records on the
  alerts topic), ``quality`` (live precision/recall/ROC-AUC) and ``quality_feed`` (scores and labels from Kafka);
- ``run_log`` (one JSON line per batch), ``report`` (the HTML report), ``status`` (what `featurestream status`
  shows).

``listener`` imports pyspark and ``quality_feed`` / ``alerts`` confluent-kafka; import them directly.
"""

from __future__ import annotations

from pipelines.observability.batch_observations import (
    BatchObservations,
    PartitionObservations,
    merge_observations,
    observe_partition,
)
from pipelines.observability.drift import (
    DriftBaseline,
    DriftMonitor,
    DriftReport,
    DriftResult,
    build_baseline,
    load_baseline,
    save_baseline,
)
from pipelines.observability.errors import BaselineError, MetricsEndpointError, ObservabilityError, RunLogError
from pipelines.observability.metrics import PipelineMetrics
from pipelines.observability.observer import StreamObserver
from pipelines.observability.quality import LiveQuality, QualitySnapshot, quality_from_frames
from pipelines.observability.run_log import RunLogEntry, RunLogWriter, entry_from_batch, read_run_log

__all__ = [
    "BaselineError",
    "BatchObservations",
    "DriftBaseline",
    "DriftMonitor",
    "DriftReport",
    "DriftResult",
    "LiveQuality",
    "MetricsEndpointError",
    "ObservabilityError",
    "PartitionObservations",
    "PipelineMetrics",
    "QualitySnapshot",
    "RunLogEntry",
    "RunLogError",
    "RunLogWriter",
    "StreamObserver",
    "build_baseline",
    "entry_from_batch",
    "load_baseline",
    "merge_observations",
    "observe_partition",
    "quality_from_frames",
    "read_run_log",
    "save_baseline",
]
