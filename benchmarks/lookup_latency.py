"""Lookup and request-time scoring latency: Python API, Feast's feature server over HTTP, POST /score.

    .venv/bin/python benchmarks/lookup_latency.py [--cards 20000] [--rate 200] [--seconds 30] [--keep]

1. Fills a fresh SQLite online store (under a temporary state dir) through the project's guarded writer with
   ``--cards`` cards and a tenth as many merchants, and registers a small synthetic XGBoost model as production.
2. Python API: ``FeatureLookup.get_features("card", [id])``, one random card per call, back to back.
3. Starts Feast's feature server and the scoring endpoint through the stack code (``serving_up``, what
   `featurestream stack up` runs), each on a free loopback port.
4. Load: an open-loop generator written here (asyncio, 32 keep-alive HTTP/1.1 connections, one process):
   request i is *scheduled* at start + i / rate whatever happened to earlier ones, and its latency is measured
   from that scheduled time, so a server that falls behind shows up in the figures (no coordinated omission).
   Two runs at ``--rate``: POST /get-online-features (one card, its nine features) and POST /score (a random
   transaction).

Prints p50 / p95 / p99 / max per path, errors, the achieved rate, the server's CPU time per request (what a
request costs, whatever else runs), cores and the load average (other processes on the machine share the CPU
with the servers and the load generator).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.feast_io.store import apply_repo
from pipelines.feast_io.writers import online_writer
from pipelines.lookups.online import FeatureLookup
from pipelines.serving.server import ScoreServer
from pipelines.stack.feature_server import FeastFeatureServer
from pipelines.stack.processes import free_port
from pipelines.stack.serving import serving_down, serving_up
from pipelines.testing import isolated_settings
from pipelines.testing.models import register_synthetic_model


def fill_store(settings: Settings, cards: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Cards and merchants with plausible feature values, written through the stream's guarded writer."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    writer = online_writer(settings)
    tables = []
    for features, prefix, count in ((CARD_FEATURES, "card", cards), (MERCHANT_FEATURES, "merch", max(1, cards // 10))):
        ids = [f"{prefix}-{i:07d}" for i in range(count)]
        frame = pd.DataFrame(
            {
                features.key_column: ids,
                "event_time": [now - timedelta(seconds=float(s)) for s in rng.uniform(1, 86_400, count)],
            }
        )
        for aggregate in features.aggregates:
            values = rng.gamma(2.0, 20.0, count)
            frame[aggregate.name] = values.round().astype(np.int64) if aggregate.dtype == "int64" else values
        writer.write(features.feature_view, frame)
        tables.append(ids)
    return tables[0], tables[1]


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server and its worker processes so far: what a request costs the server,
    whatever else competes for the cores."""
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        times = member.cpu_times()
        total += times.user + times.system
    return total


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000
    return {
        "n": float(len(ms)),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def python_api(settings: Settings, cards: list[str], calls: int) -> dict[str, float]:
    lookup = FeatureLookup(settings)
    pick = random.Random(1).choice
    for _ in range(500):  # warm-up: imports, SQLite connection, registry cache
        lookup.get_features("card", [pick(cards)])
    latencies = []
    for _ in range(calls):
        card = pick(cards)
        started = time.perf_counter()
        lookup.get_features("card", [card])
        latencies.append(time.perf_counter() - started)
    return percentiles(latencies)


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for JSON POSTs (Content-Length bodies).

    Written here rather than using httpx: httpx's async pool spends milliseconds per request once hundreds of
    requests wait for a connection, so the load generator, not the server, set the figures (measured: 24 req/s
    achieved of 200 asked, on this shared 2-core machine).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def open_loop(
    url: str, make_body: Callable[[int], dict[str, Any]], rate: float, seconds: float, connections: int = 32
) -> dict[str, float]:
    """Send ``rate`` requests per second for ``seconds``, each at its scheduled time; latency from that time.

    A scheduler puts each request on a queue at its moment; ``connections`` workers, each with its own
    keep-alive connection, send them. A request waiting for a free connection waits on the clock.
    """
    parsed = urlsplit(url)
    host, port, path = parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path
    total = int(rate * seconds)
    bodies = [json.dumps(make_body(i)).encode() for i in range(total + 50)]
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def worker() -> None:
        nonlocal errors
        connection = _Connection(host, port)
        while (item := await queue.get()) is not None:
            i, scheduled = item
            try:
                if await connection.post(path, bodies[i]) != 200:
                    errors += 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors += 1
                connection = _Connection(host, port)
            if i >= 0:
                latencies.append(time.perf_counter() - scheduled)

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    for i in range(50):  # warm-up, not timed: connections opened, the servers' first requests
        await queue.put((-1 - i, time.perf_counter()))
    await asyncio.sleep(1.0)
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {**percentiles(latencies), "errors": float(errors), "achieved_rate": total / elapsed}


def transaction_body(cards: list[str], merchants: list[str]) -> Callable[[int], dict[str, Any]]:
    rng = random.Random(2)

    def body(i: int) -> dict[str, Any]:
        return {
            "event_id": f"bench-{i}",
            "card_id": rng.choice(cards),
            "merchant_id": rng.choice(merchants),
            "amount": round(rng.uniform(1, 500), 2),
            "currency": "EUR",
            "mcc": "5411",
            "country": "DE",
            "channel": rng.choice(["POS", "ECOM", "ATM"]),
        }

    return body


def lookup_body(cards: list[str]) -> Callable[[int], dict[str, Any]]:
    rng = random.Random(3)
    features = [f"{CARD_FEATURES.feature_view}:{name}" for name in CARD_FEATURES.feature_names]
    return lambda i: {"features": features, "entities": {"card_id": [rng.choice(cards)]}}


def show(name: str, figures: dict[str, float]) -> None:
    extra = ""
    if "errors" in figures:
        extra = f"  errors {figures['errors']:.0f}  achieved {figures['achieved_rate']:.1f} req/s"
    print(
        f"{name:<42} n={figures['n']:.0f}  p50 {figures['p50']:.2f} ms  p95 {figures['p95']:.2f} ms  "
        f"p99 {figures['p99']:.2f} ms  max {figures['max']:.2f} ms{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=10_000, help="Python API lookups to time.")
    parser.add_argument("--rate", type=float, default=200.0, help="HTTP requests per second (open loop).")
    parser.add_argument("--seconds", type=float, default=30.0, help="Duration of each HTTP run.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary state dir.")
    args = parser.parse_args()

    state_dir = Path(tempfile.mkdtemp(prefix="featurestream-lookup-bench-"))
    settings = isolated_settings(
        state_dir, serving={"feature_server_port": free_port(), "score_port": free_port(), "registry_refresh_s": 60}
    )
    try:
        apply_repo(settings)
        started = time.perf_counter()
        cards, merchants = fill_store(settings, args.cards)
        print(f"filled {len(cards)} cards, {len(merchants)} merchants in {time.perf_counter() - started:.1f}s")
        register_synthetic_model(settings)

        show("Python API get_features (1 card)", python_api(settings, cards, args.calls))
        for line in serving_up(settings):
            print(line)
        serving = settings.serving
        host = settings.stack.host
        runs = [
            (
                f"feast serve /get-online-features @{args.rate:.0f}/s",
                f"http://{host}:{serving.feature_server_port}/get-online-features",
                lookup_body(cards),
                FeastFeatureServer(settings).status().pid,
            ),
            (
                f"POST /score @{args.rate:.0f}/s",
                f"http://{host}:{serving.score_port}/score",
                transaction_body(cards, merchants),
                ScoreServer(settings).status().pid,
            ),
        ]
        for name, url, body, pid in runs:
            assert pid is not None, f"{name}: the server is not running"
            cpu_before, load_before = server_cpu_seconds(pid), os.getloadavg()[0]
            figures = asyncio.run(open_loop(url, body, args.rate, args.seconds))
            cpu = server_cpu_seconds(pid) - cpu_before
            show(name, figures)
            print(
                f"{'':<42} server CPU {cpu / (args.rate * args.seconds + 50) * 1000:.2f} ms per request; "
                f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
            )
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        serving_down(settings)
        if not args.keep:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
