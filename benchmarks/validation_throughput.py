"""How fast GX validation runs per pandas batch, split into fixed per-call cost and per-row cost.

    .venv/bin/python benchmarks/validation_throughput.py [--sizes 5000,20000,50000,100000] [--repeats 7]
                                                          [--bad-fraction 0.01] [--json out.json]

The frames look like what Spark's ``mapInPandas`` hands an executor: object strings, float64 amounts, naive
datetime64[ns] event times (UTC session), with ``--bad-fraction`` of the rows breaking one rule each. One
process, one core: that is what one Spark task gets. Reported per size: median wall and CPU time of
``validate_rows``, CPU time of the ``mapInPandas`` function (adds the two verdict columns), rows per CPU
second; then a least-squares fit cpu = fixed + rows * per_row over the sizes, a 1-row call as a direct look
at the fixed part, and what GX's batch fingerprint (a hash of every frame GX is given, twice per call on
the public ``Batch.validate`` path) costs per row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from pipelines.validation import get_validator, validate_frame_for_spark, validate_rows  # noqa: E402
from pipelines.validation.reference import read_reference_codes  # noqa: E402
from pipelines.validation.suite import SCHEMAS_DIR  # noqa: E402

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TARGET_EVENTS_PER_SECOND = 25_000


def make_batch(rows: int, *, bad_fraction: float, seed: int = 7) -> pd.DataFrame:
    """A decoded micro-batch chunk as Spark's Arrow conversion delivers it to pandas."""
    rng = np.random.default_rng(seed)
    currencies = np.array(read_reference_codes(SCHEMAS_DIR / "reference" / "currencies.txt"), dtype=object)
    countries = np.array(read_reference_codes(SCHEMAS_DIR / "reference" / "countries.txt"), dtype=object)
    event_ms = int(NOW.timestamp() * 1000) - rng.integers(0, 86_400_000, rows)
    df = pd.DataFrame(
        {
            "event_id": [f"evt-{seed}-{i:09d}" for i in range(rows)],
            "card_id": np.char.add("card-", rng.integers(0, 50_000, rows).astype(str)).astype(object),
            "merchant_id": np.char.add("m-", rng.integers(0, 2_000, rows).astype(str)).astype(object),
            "amount": np.round(rng.lognormal(3.5, 1.2, rows).clip(0.01, 49_999), 2),
            "currency": rng.choice(currencies, rows),
            "mcc": rng.choice(np.array(["5411", "5812", "5999", "6011"], dtype=object), rows),
            "country": rng.choice(countries, rows),
            "channel": rng.choice(np.array(["POS", "ECOM", "ATM"], dtype=object), rows),
            "event_time": pd.to_datetime(event_ms, unit="ms"),  # naive, as Spark hands TimestampType over
        }
    )
    bad = rng.choice(rows, size=int(rows * bad_fraction), replace=False)
    breakers: list[tuple[str, Any]] = [
        ("amount", -1.0),
        ("amount", 75_000.0),
        ("currency", "XXQ"),
        ("country", "ZZ"),
        ("channel", "WEB"),
        ("event_time", pd.Timestamp(NOW.replace(tzinfo=None) + timedelta(days=3))),
        ("card_id", None),
    ]
    for k, position in enumerate(bad):
        column, value = breakers[k % len(breakers)]
        df.at[position, column] = value
    return df


@dataclass(frozen=True)
class Timing:
    wall: float  # median wall seconds
    cpu: float  # median CPU seconds
    cpu_min: float  # fastest CPU seconds: closest to an idle machine when other processes compete


def timed(call: Callable[[], object], repeats: int) -> Timing:
    """Wall and CPU time of ``call`` over ``repeats`` runs, after one warm-up call.

    CPU time is what "share of a core" needs and is far less disturbed by other processes on a shared
    machine than wall time; the two agree on a quiet machine.
    """
    call()  # warm: caches, first-call imports
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        call()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return Timing(wall=statistics.median(wall), cpu=statistics.median(cpu), cpu_min=min(cpu))


def linear_fit(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.array(sizes, dtype=float), np.array(seconds), 1)
    return float(intercept), float(slope)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GX validation throughput per batch size.")
    parser.add_argument("--sizes", default="5000,20000,50000,100000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bad-fraction", type=float, default=0.01)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    started = time.perf_counter()
    validator = get_validator()
    cold_start = time.perf_counter() - started
    print(f"cold start (import GX, load suite, ephemeral context, first empty validation): {cold_start:.2f} s")
    print(f"suite: {validator.suite.name}, {len(validator.suite.expectations)} expectations; one process, one core\n")

    results: dict[str, Any] = {
        "cold_start_s": cold_start,
        "bad_fraction": args.bad_fraction,
        "load_average_1m": os.getloadavg()[0],
        "sizes": [],
    }
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    header = f"{'rows':>7} | {'validate_rows wall':>18} {'cpu med':>9} {'cpu min':>9} {'rows/cpu-s':>11}"
    print(f"{header} | {'mapInPandas fn cpu':>18} {'rows/cpu-s':>11}")
    timings: list[Timing] = []
    for size in sizes:
        df = make_batch(size, bad_fraction=args.bad_fraction)
        invalid = len(df) - validate_rows(df, now=NOW).valid_count
        timing = timed(partial(validate_rows, df, now=NOW), args.repeats)
        spark_cpu = timed(partial(validate_frame_for_spark, df, now=NOW), args.repeats).cpu
        timings.append(timing)
        print(
            f"{size:>7} | {timing.wall * 1000:>15.1f} ms {timing.cpu * 1000:>6.1f} ms {timing.cpu_min * 1000:>6.1f} ms "
            f"{size / timing.cpu:>11,.0f} | {spark_cpu * 1000:>15.1f} ms {size / spark_cpu:>11,.0f}"
            f"   ({invalid} invalid rows)"
        )
        results["sizes"].append(
            {
                "rows": size,
                "invalid_rows": invalid,
                "validate_rows_wall_s": timing.wall,
                "validate_rows_cpu_s": timing.cpu,
                "validate_rows_cpu_min_s": timing.cpu_min,
                "validate_rows_per_cpu_s": size / timing.cpu,
                "spark_fn_cpu_s": spark_cpu,
                "spark_fn_rows_per_cpu_s": size / spark_cpu,
            }
        )

    fixed, per_row = linear_fit(sizes, [timing.cpu for timing in timings])
    fixed_best, per_row_best = linear_fit(sizes, [timing.cpu_min for timing in timings])
    one_row_frame = make_batch(1, bad_fraction=0)
    one_row = timed(partial(validate_rows, one_row_frame, now=NOW), args.repeats)
    from great_expectations.execution_engine.pandas_execution_engine import hash_pandas_dataframe

    largest = make_batch(sizes[-1], bad_fraction=args.bad_fraction)
    prepared = validator.prepare_frame(largest)
    hash_per_row = timed(partial(hash_pandas_dataframe, prepared), 3).cpu_min / sizes[-1]
    prepare_per_row = timed(partial(validator.prepare_frame, largest), 3).cpu_min / sizes[-1]
    print(f"\nfit over sizes, median CPU: fixed {fixed * 1000:.1f} ms per call + {per_row * 1e6:.2f} µs per row")
    print(
        f"fit over sizes, fastest CPU: fixed {fixed_best * 1000:.1f} ms per call + {per_row_best * 1e6:.2f} µs per row"
    )
    print(
        f"1-row call CPU: median {one_row.cpu * 1000:.1f} ms, fastest {one_row.cpu_min * 1000:.1f} ms (the fixed part)"
    )
    print(f"per row, GX's batch fingerprint: {hash_per_row * 1e6:.2f} µs per hash, two hashes per call")
    print(f"per row, frame preparation (projection, naive -> UTC timestamps): {prepare_per_row * 1e6:.2f} µs")
    for size, timing in zip(sizes, timings, strict=True):
        share = TARGET_EVENTS_PER_SECOND * timing.cpu / size
        print(f"{TARGET_EVENTS_PER_SECOND:,} events/s in {size:>6}-row calls: validation takes {share:.0%} of one core")
    results.update(
        fixed_cpu_ms=fixed * 1000,
        per_row_cpu_us=per_row * 1e6,
        fixed_cpu_ms_fastest=fixed_best * 1000,
        per_row_cpu_us_fastest=per_row_best * 1e6,
        one_row_call_cpu_ms=one_row.cpu * 1000,
        gx_fingerprint_us_per_row=hash_per_row * 1e6,
        prepare_us_per_row=prepare_per_row * 1e6,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
