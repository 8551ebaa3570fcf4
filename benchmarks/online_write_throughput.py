"""Online write throughput: Feast's write_to_online_store vs featurestream's guarded SQLite writer.

    .venv/bin/python benchmarks/online_write_throughput.py [--rows 100000] [--features 9] [--keep]

Writes ``--rows`` distinct entities with ``--features`` Float64 features each into two fresh SQLite online stores
under ``<state_dir>/benchmarks/`` (removed afterwards unless ``--keep``): one through Feast's SDK, one through
:class:`~pipelines.feast_io.sqlite_writer.SqliteOnlineWriter`, which is then also timed on a batch that replaces
every entity (newer events) and one that is refused entirely (older events). Rows are entities: each is
``--features`` SQLite rows in Feast's layout.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import PROJECT_ROOT, Settings, load_settings
from pipelines.feast_io.sqlite_writer import SqliteOnlineWriter
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.testing import isolated_settings

VIEW = "bench_features"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def write_repo(repo: Path, features: int) -> None:
    """A one-view Feast repository: entity `bench`, view `bench_features` of Float64 features."""
    repo.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "features" / "feature_store.yaml", repo / "feature_store.yaml")
    fields = "\n".join(f'        Field(name="f{i}", dtype=Float64),' for i in range(features))
    (repo / "bench.py").write_text(
        f'''from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, String
from pipelines.feast_io.paths import offline_view_path
from pipelines.feast_io.store import definition_settings

bench = Entity(name="bench", join_keys=["bench_id"], value_type=ValueType.STRING)
bench_features = FeatureView(
    name="{VIEW}",
    entities=[bench],
    ttl=timedelta(0),
    schema=[
        Field(name="bench_id", dtype=String),
{fields}
    ],
    source=FileSource(path=str(offline_view_path(definition_settings(), "{VIEW}")), timestamp_field="event_time"),
)
'''
    )


def rows(count: int, features: int, event_time: datetime, seed: int) -> pd.DataFrame:
    values = np.random.default_rng(seed).normal(size=(count, features))
    frame = pd.DataFrame(values, columns=[f"f{i}" for i in range(features)])
    frame.insert(0, "event_time", pd.Timestamp(event_time))
    frame.insert(0, "bench_id", [f"entity-{i:09d}" for i in range(count)])
    return frame


def timed(label: str, count: int, write: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = write()
    seconds = time.perf_counter() - started
    print(f"{label:<52} {count:>9,} rows {seconds:>8.2f} s {count / seconds:>11,.0f} rows/s   {result or ''}")
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's state directory")
    args = parser.parse_args()

    base = load_settings().stack.state_dir / "benchmarks" / f"online-write-{time.strftime('%Y%m%d-%H%M%S')}"
    repo = base / "repo"
    write_repo(repo, args.features)

    def store_settings(name: str) -> Settings:
        settings = isolated_settings(base / name, feast={"repo_path": repo})
        apply_repo(settings)
        return settings

    try:
        first = rows(args.rows, args.features, T0, seed=1)
        print(f"{args.rows:,} entities x {args.features} Float64 features, fresh SQLite stores under {base}")

        sdk_store = feature_store(store_settings("sdk"))
        sdk = timed(
            "Feast write_to_online_store (unguarded)", args.rows, lambda: sdk_store.write_to_online_store(VIEW, first)
        )

        writer = SqliteOnlineWriter.from_settings(store_settings("guarded"))
        new = timed("SqliteOnlineWriter, new entities", args.rows, lambda: writer.write(VIEW, first))
        newer = rows(args.rows, args.features, T0 + timedelta(seconds=1), seed=2)
        timed("SqliteOnlineWriter, every entity replaced (newer)", args.rows, lambda: writer.write(VIEW, newer))
        older = rows(args.rows, args.features, T0, seed=3)
        timed("SqliteOnlineWriter, every entity refused (older)", args.rows, lambda: writer.write(VIEW, older))
        print(f"speed-up on new entities: {new / sdk:.1f}x")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
