"""Which micro-batches a latency run's slowest scores waited on (a script reading a trace, not a test).

    .venv/bin/python benchmarks/latency_tail.py TRACE_DIR [--quantile 99] [--slow-factor 1.4] [--json out.json]

``TRACE_DIR`` is what ``benchmarks/score_latency.py --trace TRACE_DIR`` wrote. The report gives the latency at
``--quantile`` over the timed scores (the same set as the run's percentiles), the batches that read the events at
or above it (with the batch that ran while they arrived), the runs of consecutive batches slower than
``--slow-factor`` times the median batch, with their largest input (:mod:`pipelines.testing.latency_tail`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.testing.benchmark_report import emit_report
from pipelines.testing.latency_tail import BatchTiming, slow_runs, tail_batches

TAIL_BATCHES_SHOWN = 10
SLOW_RUNS_SHOWN = 5


def batch_timings(progress_lines: list[dict[str, Any]]) -> list[BatchTiming]:
    """Spark's progress reports as timings, in start order."""
    timings = [
        BatchTiming(
            batch_id=int(p["batchId"]),
            started_ms=datetime.fromisoformat(p["timestamp"]).timestamp() * 1000,
            seconds=p["durationMs"].get("triggerExecution", 0) / 1000,
            input_rows=int(p["numInputRows"]),
        )
        for p in progress_lines
    ]
    return sorted(timings, key=lambda b: b.started_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", type=Path)
    parser.add_argument("--quantile", type=float, default=99)
    parser.add_argument("--slow-factor", type=float, default=1.4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    progress = [json.loads(line) for line in (args.trace / "progress.jsonl").read_text().splitlines() if line]
    timed_from_ms = float(json.loads((args.trace / "run.json").read_text())["timed_from_ms"])
    seen = np.load(args.trace / "latencies.npy")
    steady = seen[seen[:, 0] >= timed_from_ms]
    batches = batch_timings(progress)
    timed = [b for b in batches if b.started_ms >= timed_from_ms]
    threshold_s, tail = tail_batches(batches, steady[:, 0], steady[:, 1], args.quantile)
    median_s = float(np.median([b.seconds for b in timed])) if timed else 0.0
    runs = slow_runs(timed, args.slow_factor * median_s)
    emit_report(
        {
            "trace": str(args.trace),
            "timed_scores": len(steady),
            "timed_batches": len(timed),
            f"latency_p{args.quantile:g}_s": round(threshold_s, 3),
            "batches_reading_the_tail": len(tail),
            "tail_batches": [asdict(b) for b in tail[:TAIL_BATCHES_SHOWN]],
            "median_batch_s": round(median_s, 3),
            "slow_threshold_s": round(args.slow_factor * median_s, 3),
            "slow_runs": [asdict(r) for r in runs[:SLOW_RUNS_SHOWN]],
        },
        args.json,
    )


if __name__ == "__main__":
    main()
