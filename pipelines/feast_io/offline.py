"""The offline store's Parquet layout and the idempotent per-partition writer the streaming job calls.

Layout: ``<offline_root>/<view>/batch_id=<N>/part-<P>.parquet``: micro-batch ``N``, Spark partition ``P``. The
streaming job writes each partition's rows from the executor that holds them (pyarrow, no extra Spark job), so
nothing is collected to the driver. When Spark replays batch N after a crash it recomputes the same rows into
the same partitions (a stateful query pins its shuffle partitions in the checkpoint), and each file is
replaced, not appended to: the offline store never holds an event twice. A file appears whole or not at all
(written under a hidden name, then renamed).

Feast's offline store reads ``<offline_root>/<view>`` (the FileSource path) as one dataset; hidden files (names
starting with ``.`` or ``_``) are ignored, and the ``batch_id`` folder name is not one of the columns Feast
selects (join keys, event time, features).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import Settings
from pipelines.feast_io.paths import offline_view_path

BATCH_PARTITION = "batch_id"


def offline_batch_path(settings: Settings, view: str, batch_id: int) -> str:
    """The folder that holds exactly the rows of one micro-batch of one feature view."""
    if batch_id < 0:
        raise ValueError(f"batch id must not be negative, got {batch_id}")
    return str(offline_view_path(settings, view) / f"{BATCH_PARTITION}={batch_id}")


def offline_part_path(settings: Settings, view: str, batch_id: int, partition: int) -> Path:
    """The file holding one Spark partition's rows of one micro-batch of one feature view."""
    if partition < 0:
        raise ValueError(f"partition must not be negative, got {partition}")
    return Path(offline_batch_path(settings, view, batch_id)) / f"part-{partition:05d}.parquet"


def write_offline_part(table: pa.Table, settings: Settings, view: str, batch_id: int, partition: int) -> Path:
    """Write one partition's feature rows (join key, ``event_time``, features) of batch ``batch_id``, replacing
    an earlier attempt's file. Timestamps are stored as UTC-adjusted microseconds, which Feast's point-in-time
    join compares with UTC entity timestamps (a zone-less timestamp would not compare)."""
    target = offline_part_path(settings, view, batch_id, partition)
    target.parent.mkdir(parents=True, exist_ok=True)
    hidden = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, hidden, coerce_timestamps="us", allow_truncated_timestamps=True)
        hidden.replace(target)
    finally:
        hidden.unlink(missing_ok=True)
    return target
