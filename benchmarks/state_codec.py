"""What a state bucket's stored value costs: bytes per held event, and the codec's time, on generated traffic.

    .venv/bin/python benchmarks/state_codec.py [--rate 5000] [--seconds 90] [--state-buckets 2]
                                               [--batch-seconds 1] [--repeats 7] [--json out.json]

Builds what one state bucket of each entity type holds after ``--seconds`` of generated traffic at ``--rate``
events/s (event times stamped at that rate, as ``score_latency.py`` produces them), fed to the streaming job's own
feature function (:func:`~pipelines.transforms.windows.compute_window_features`) in ``--batch-seconds``
micro-batches; entities are split into ``--state-buckets`` by a hash of their id, as the stream splits them. Then
it times :func:`~pipelines.transforms.history_codec.encode_history` and ``decode_history`` on that history
(median of ``--repeats``) and reports the stored bytes per held event, and times the feature function itself on
the bucket's last micro-batch, held back from the history for that (``features_ms``: what the windows cost per
bucket call at that much held state).

Pure Python on one core: no Spark, no broker. The JVM's share of a bucket's cost (pickling the value to Python at
about 20 ns a byte, then RocksDB) is not timed here; it grows with the bytes reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES  # noqa: E402
from pipelines.generator.generator import GeneratorOptions, TransactionGenerator  # noqa: E402
from pipelines.generator.timing import SpanPlan  # noqa: E402
from pipelines.testing.benchmark_report import machine_description  # noqa: E402
from pipelines.transforms.history_codec import decode_history, encode_history  # noqa: E402
from pipelines.transforms.windows import EntityFeatureSet, EntityHistory, compute_window_features  # noqa: E402


def generated_events(rate: float, seconds: float) -> pd.DataFrame:
    """The columns the entity features read, for ``rate * seconds`` events stamped at ``rate`` from now."""
    count, now_ms = round(rate * seconds), int(time.time() * 1000)
    # The rate's even spread of event times, generated in the default large chunks (paced generation would cut the
    # traffic into 0.1 s chunks, which crawls at low rates).
    plan = SpanPlan(now_ms, round(seconds * 1000), count, daily_cycle=False)
    generator = TransactionGenerator(GeneratorOptions(count=count, now_ms=now_ms), plan)
    population = generator.population
    frames = [
        pd.DataFrame(
            {
                "card_id": population.card_ids[chunk.transactions.card],
                "merchant_id": population.merchant_ids[chunk.transactions.merchant],
                "amount": chunk.transactions.amount,
                "event_time_ms": chunk.transactions.event_time,
            }
        )
        for chunk in generator.chunks()
        if len(chunk.transactions)
    ]
    return pd.concat(frames, ignore_index=True)


def bucket_history(
    features: EntityFeatureSet, events: pd.DataFrame, buckets: int, batch_rows: int
) -> tuple[EntityHistory, pd.DataFrame]:
    """The first bucket's history after feeding its events batch by batch, as the stateful stage does, but for its
    last batch, which is returned with it."""
    in_bucket = pd.util.hash_array(events[features.key_column].to_numpy(dtype=object)) % buckets == 0
    mine = events[in_bucket].reset_index(drop=True)
    last_start = max(0, len(mine) - batch_rows)
    history = EntityHistory.empty(features)
    for start in range(0, last_start, batch_rows):
        _, history = compute_window_features(features, history, mine.iloc[start : min(start + batch_rows, last_start)])
    return history, mine.iloc[last_start:].reset_index(drop=True)


def median_ms(call: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def codec_figures(
    features: EntityFeatureSet, history: EntityHistory, next_batch: pd.DataFrame, buckets: int, repeats: int
) -> dict[str, Any]:
    """The stored value's size, the median time to encode and to decode it, and to compute the features of
    ``next_batch`` on it."""
    value = encode_history(history, state_buckets=buckets)
    return {
        "held_events": len(history),
        "value_bytes": len(value),
        "bytes_per_held_event": round(len(value) / max(len(history), 1), 3),
        "encode_ms": median_ms(lambda: encode_history(history, state_buckets=buckets), repeats),
        "decode_ms": median_ms(lambda: decode_history(value, features, state_buckets=buckets), repeats),
        "next_batch_rows": len(next_batch),
        "features_ms": median_ms(lambda: compute_window_features(features, history, next_batch), repeats),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="events per second of event time")
    parser.add_argument("--seconds", type=float, default=90.0, help="event time the history spans")
    parser.add_argument("--state-buckets", type=int, default=2, help="buckets per entity type (stream.state_buckets)")
    parser.add_argument("--batch-seconds", type=float, default=1.0, help="event time per micro-batch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.state_buckets < 1 or args.batch_seconds <= 0 or args.repeats < 1:
        parser.error("--rate, --seconds, --batch-seconds must be positive; --state-buckets, --repeats at least 1")

    events = generated_events(args.rate, args.seconds)
    batch_rows = max(1, round(args.rate * args.batch_seconds / args.state_buckets))
    results: dict[str, Any] = {
        "rate_events_per_s": args.rate,
        "seconds": args.seconds,
        "state_buckets": args.state_buckets,
        "events": len(events),
        "buckets": {},
        "machine": machine_description(),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }
    for features in (CARD_FEATURES, MERCHANT_FEATURES):
        history, next_batch = bucket_history(features, events, args.state_buckets, batch_rows)
        figures = codec_figures(features, history, next_batch, args.state_buckets, args.repeats)
        results["buckets"][features.entity] = figures
        print(
            f"{features.entity:>9}: {figures['held_events']:,} held events, {figures['value_bytes']:,} bytes "
            f"({figures['bytes_per_held_event']} a held event); encode {figures['encode_ms']} ms, "
            f"decode {figures['decode_ms']} ms; features of {figures['next_batch_rows']:,} more events "
            f"{figures['features_ms']} ms"
        )
    print(f"machine: {results['machine']}, load average {results['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
