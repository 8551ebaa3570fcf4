"""How a growing per-bucket history costs per micro-batch in three state layouts (a script, not a test).

    .venv/bin/python benchmarks/state_store_layouts.py [--layout value|list|cached-list|all] [--seconds 150]
                                                       [--bytes-per-row 30] [--json out.json]

The stream's stateful stage keeps each state bucket's whole window of history as one value, rewritten every batch
(README, "The state's cost grows with the window"). This script isolates that cost from the features: Spark's
rate source at 5,000 rows/s into 2 groups, each row adding ``--bytes-per-row`` random bytes to its group's history
(30 bytes a row is ~5 times the card bucket's ~6 bytes a held event, so 150 s here hold what a ~12-minute run of
the real stream would), and the whole history handed to Python every batch, as the feature function needs it:

- ``value``: ``applyInPandasWithState`` with the history as one binary value, read and rewritten whole (today's
  layout);
- ``list``: ``transformWithStateInPandas`` with a ``ListState`` of chunks, one appended per batch, all read back;
- ``cached-list``: as ``list``, plus a ``ValueState`` token that names the last write; a Python worker that made
  that write keeps the history in memory and skips reading the chunks. The state store stays the only durable
  copy: a worker that did not make the last write (or restarted) reads the chunks.

It reports the foreachBatch time (Spark's ``addBatch``) by third of the run: a layout whose cost follows the held
bytes grows from third to third. Also the Python function's own median time over the last third, and how many
calls the cache served.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.spark.session import get_or_create_session
from pipelines.spark.worker_memory import worker_process_dict
from pipelines.testing import isolated_settings
from pipelines.testing.benchmark_report import emit_report, machine_description

LAYOUTS = ("value", "list", "cached-list")
RATE = 5_000
GROUPS = 2
OUTPUT = "group long, rows long, held_mb double, python_ms double, cache_hit boolean"


def _worker_cache() -> dict[int, tuple[str, bytes]]:
    """The histories this Python worker process wrote last, by group, kept across tasks."""
    cache: dict[int, tuple[str, bytes]] = worker_process_dict("_state_layout_cache")
    return cache


def _result(group: int, rows: int, held: bytes, started: float, cache_hit: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "group": [group],
            "rows": [rows],
            "held_mb": [len(held) / 1e6],
            "python_ms": [(time.perf_counter() - started) * 1000],
            "cache_hit": [cache_hit],
        }
    )


def value_layout(rows: Any, bytes_per_row: int) -> Any:
    from pyspark.sql.streaming.state import GroupStateTimeout

    def update(key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        started = time.perf_counter()
        count = sum(len(frame) for frame in frames)
        held = bytes(state.get[0]) if state.exists else b""
        held += os.urandom(count * bytes_per_row)
        state.update((held,))
        yield _result(int(key[0]), count, held, started, cache_hit=False)

    return rows.groupBy("group").applyInPandasWithState(
        update,
        outputStructType=OUTPUT,
        stateStructType="history binary",
        outputMode="append",
        timeoutConf=GroupStateTimeout.NoTimeout,
    )


def list_layout(rows: Any, bytes_per_row: int, *, cached: bool) -> Any:
    from pyspark.sql.streaming import StatefulProcessor

    class ChunkedHistory(StatefulProcessor):
        def init(self, handle: Any) -> None:
            self.chunks = handle.getListState("chunks", "chunk binary")
            self.token = handle.getValueState("token", "token string")

        def handleInputRows(  # noqa: N802  # pyspark's name
            self, key: Any, rows: Iterator[pd.DataFrame], timer_values: Any
        ) -> Iterator[pd.DataFrame]:
            started = time.perf_counter()
            count = sum(len(frame) for frame in rows)
            group = int(key[0])
            cache = _worker_cache()
            last_write = self.token.get()[0] if self.token.exists() else None
            kept = cache.get(group)
            cache_hit = cached and kept is not None and kept[0] == last_write
            if cache_hit:
                held = kept[1]  # type: ignore[index]
            else:
                held = b"".join(bytes(chunk[0]) for chunk in self.chunks.get()) if self.chunks.exists() else b""
            chunk = os.urandom(count * bytes_per_row)
            self.chunks.appendValue((chunk,))
            token = uuid.uuid4().hex
            self.token.update((token,))
            held += chunk
            if cached:
                cache[group] = (token, held)
            yield _result(group, count, held, started, cache_hit)

        def close(self) -> None:
            pass

    return rows.groupBy("group").transformWithStateInPandas(
        statefulProcessor=ChunkedHistory(), outputStructType=OUTPUT, outputMode="Append", timeMode="None"
    )


def run_layout(layout: str, seconds: float, bytes_per_row: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    root = Path(tempfile.mkdtemp(prefix="fs-bench-layouts-"))
    settings = isolated_settings(root)
    settings = settings.model_copy(
        update={
            "spark": settings.spark.model_copy(
                update={"extra_conf": {"spark.sql.streaming.numRecentProgressUpdates": "100000"}}
            )
        }
    )
    spark = get_or_create_session(settings, master="local[2]")
    source = spark.readStream.format("rate").option("rowsPerSecond", RATE).option("numPartitions", GROUPS).load()
    rows = source.withColumn("group", F.col("value") % GROUPS)
    if layout == "value":
        stateful = value_layout(rows, bytes_per_row)
    else:
        stateful = list_layout(rows, bytes_per_row, cached=layout == "cached-list")
    calls: list[dict[str, Any]] = []

    def collect(frame: Any, batch_id: int) -> None:
        calls.extend(row.asDict() for row in frame.collect())

    query = (
        stateful.writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(root / "checkpoint"))
        .trigger(processingTime="500 milliseconds")
        .start()
    )
    time.sleep(seconds)
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    calls = list(calls)  # the figures are taken before stopping: see main()
    add_batch_ms = np.array([p["durationMs"].get("addBatch", 0) for p in progress], dtype=np.float64)
    trigger_ms = np.array([p["durationMs"].get("triggerExecution", 0) for p in progress], dtype=np.float64)
    last_third = calls[-max(1, len(calls) // 3) :]
    return {
        "layout": layout,
        "batches": len(progress),
        "rows": int(sum(p["numInputRows"] for p in progress)),
        "add_batch_ms_by_third": [round(float(np.median(part)), 1) for part in np.array_split(add_batch_ms, 3)],
        "trigger_ms_by_third": [round(float(np.median(part)), 1) for part in np.array_split(trigger_ms, 3)],
        "held_mb_per_group_at_end": round(max((c["held_mb"] for c in calls), default=0.0), 1),
        "python_ms_last_third": round(float(np.median([c["python_ms"] for c in last_third])), 1) if calls else None,
        "cache_hits": sum(bool(c["cache_hit"]) for c in calls),
        "calls": len(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=[*LAYOUTS, "all"], default="all", help="all: each in its own process")
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--bytes-per-row", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.layout != "all":
        # One layout per process, which exits without stopping the query: stopping a transformWithStateInPandas
        # query overflowed the stream thread's stack here (pyspark 4.0.0), and a 150 s run then ended unreported.
        print(json.dumps(run_layout(args.layout, args.seconds, args.bytes_per_row)), flush=True)
        os._exit(0)
    load_before = os.getloadavg()[0]
    runs = []
    for layout in LAYOUTS:
        child = [sys.executable, __file__, "--layout", layout, "--seconds", str(args.seconds)]
        child += ["--bytes-per-row", str(args.bytes_per_row)]
        finished = subprocess.run(child, capture_output=True, text=True, check=True, timeout=args.seconds + 300)
        runs.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    report = {
        "rate_rows_per_s": RATE,
        "groups": GROUPS,
        "seconds": args.seconds,
        "bytes_per_row": args.bytes_per_row,
        "runs": runs,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "machine": machine_description(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
