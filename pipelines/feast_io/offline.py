"""The offline store's Parquet layout and the idempotent per-batch writer the streaming job calls.

Layout: ``<offline_root>/<view>/batch_id=<N>/part-*.parquet``. Each micro-batch owns one folder, written with
Spark's ``mode("overwrite")``, so when Spark replays batch N after a crash (same batch id, same rows) the folder is
replaced, not appended to: the offline store never holds an event twice. The whole batch is written by the
executors; nothing is collected to the driver.

Feast's file offline store reads ``<offline_root>/<view>`` (the FileSource path) as one dataset; it ignores
files whose names start with ``_`` or ``.`` (Spark's ``_SUCCESS``, ``.crc`` files and an interrupted write's
``_temporary``), and the ``batch_id`` folder name, which Dask reads as a column, is dropped because Feast selects
only the join keys, event time and features.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import Settings
from pipelines.feast_io.paths import offline_view_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BATCH_PARTITION = "batch_id"


def offline_batch_path(settings: Settings, view: str, batch_id: int) -> str:
    """The folder that holds exactly the rows of one micro-batch of one feature view."""
    if batch_id < 0:
        raise ValueError(f"batch id must not be negative, got {batch_id}")
    return str(offline_view_path(settings, view) / f"{BATCH_PARTITION}={batch_id}")


def write_offline_batch(df: DataFrame, settings: Settings, view: str, batch_id: int) -> None:
    """Write one micro-batch's feature rows (join key, ``event_time``, features) for ``view``, replacing any
    earlier attempt of the same batch. Call it from ``foreachBatch`` with Spark's batch id."""
    path = offline_batch_path(settings, view, batch_id)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Spark's default INT96 reads back as a zone-less timestamp, which Feast's point-in-time join cannot compare
    # with the (UTC) entity timestamps. TIMESTAMP_MICROS is marked UTC-adjusted and reads back as UTC. It is a
    # session setting (Parquet writes take no such option); setting it again is harmless.
    df.sparkSession.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    df.write.mode("overwrite").parquet(path)
