"""Run the feature stream to the end of its topic in a test, and leave nothing of it running."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.config import Settings
from pipelines.streaming.job import RunningStream, start_feature_stream

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run_until_drained(spark: SparkSession, settings: Settings, timeout_s: int = 600) -> RunningStream:
    """Start the query with ``availableNow``, wait until it has read everything, then close its observer.

    Closing matters beyond tidiness: an observer left open keeps its live-quality consumer polling after the
    test, and once the session's broker stops, every such consumer floods the log with "connection refused".
    """
    running = start_feature_stream(spark, settings, available_now=True)
    try:
        if not running.query.awaitTermination(timeout_s):
            running.query.stop()
            raise AssertionError(f"the stream did not drain its topic within {timeout_s} s")
        failure = running.query.exception()
        if failure is not None:
            raise AssertionError(f"the stream failed: {failure}")
    finally:
        running.close()
    return running
