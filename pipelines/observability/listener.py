"""A ``StreamingQueryListener`` that forwards Spark's progress to :class:`PipelineMetrics`.

Registered once per Spark session (``spark.streams.addListener(MetricsListener(metrics))``); Spark calls it on
the driver after every trigger with the query's progress, which already holds rates, offsets and state sizes:
nothing is computed from the data a second time. It only forwards: the parsing lives in
:mod:`pipelines.observability.progress`, so tests drive it with a fake event carrying ``.progress.json``.
A failure here is logged and swallowed: metrics must never stop the query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from pipelines.observability.metrics import PipelineMetrics
from pipelines.observability.progress import ProgressSummary

log = logging.getLogger(__name__)


class MetricsListener(StreamingQueryListener):
    """Forwards query start, progress and termination to a :class:`PipelineMetrics`.

    ``on_progress`` (optional) also receives each parsed summary, e.g. for the run log's rates.
    """

    def __init__(self, metrics: PipelineMetrics, on_progress: Callable[[ProgressSummary], None] | None = None) -> None:
        self.metrics = metrics
        self.on_progress = on_progress
        self._names: dict[str, str] = {}

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 (Spark's name)
        try:
            name = event.name or self.metrics.query
            self._names[str(event.id)] = name
            self.metrics.set_query_active(name, True)
        except Exception:  # a listener must never break the query
            log.exception("metrics listener: could not record a query start")

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802 (Spark's name)
        try:
            summary = self.metrics.observe_progress(event.progress.json)
            if self.on_progress is not None:
                self.on_progress(summary)
        except Exception:
            log.exception("metrics listener: could not record query progress")

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802 (Spark's name)
        """Nothing to record: an idle trigger read nothing, and the gauges keep their last values."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802 (Spark's name)
        try:
            name = self._names.pop(str(event.id), self.metrics.query)
            self.metrics.set_query_active(name, False)
        except Exception:
            log.exception("metrics listener: could not record a query termination")
