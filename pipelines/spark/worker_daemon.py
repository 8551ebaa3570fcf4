"""Spark's Python worker daemon, with pyspark imported from site-packages and no archive left on ``sys.path``.

Spark puts its ``pyspark.zip``, the py4j zip and the spark-core jar (5,261 entries, no Python in it) first on the
workers' ``PYTHONPATH``, and every task begins with ``importlib.invalidate_caches()``
(``pyspark.worker_util.setup_spark_files``). On Python 3.11 that re-reads, in pure Python, the whole directory of
every archive once for every package path imported from it: measured with py-spy on this job's workers, a third
of all Python worker time went there, on every task of every micro-batch. The pip-installed pyspark in the
project's virtualenv is the same code as the zip it ships, so the workers import it from there, and the archives'
importers are dropped from the import system's cache.

The daemon also imports, once, what every worker of this job imports (pyspark's worker, pandas, pyarrow, Great
Expectations, the stage modules) and then freezes the garbage collector's view of those objects before it forks
the workers: pyspark's daemon runs a full ``gc.collect()`` after every task of a reused worker, and with GX
loaded that walked ~300,000 objects each time (py-spy: 40% of all Python worker time in the live-rate run).
Frozen objects are never scanned; forked workers share them copy-on-write and start without importing again.

Used through ``spark.python.daemon.module`` (see :func:`pipelines.spark.session.spark_conf`); Spark starts it as
``python -m pipelines.spark.worker_daemon pyspark.worker``.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib
import runpy
import signal
import sys
import zipimport
from importlib.machinery import PathFinder
from pathlib import PurePath


def _is_spark_archive(entry: str) -> bool:
    path = PurePath(entry)
    return path.suffix == ".jar" or (path.suffix == ".zip" and path.parent.name == "lib")


def without_spark_archives(path: list[str]) -> list[str]:
    """``sys.path`` without the jars and the zips Spark ships under ``python/lib`` (pyspark.zip, py4j-*.zip), if
    pyspark can be imported without them; else unchanged (a Spark distribution whose Python lacks pyspark)."""
    kept = [entry for entry in path if not _is_spark_archive(entry)]
    return kept if PathFinder.find_spec("pyspark", kept) is not None else list(path)


def forget_namespaces_in_archives(modules: dict[str, object], archives: set[str]) -> None:
    """Forget namespace packages found only inside ``archives``: a stale one keeps its archive's importer alive.

    The standard library's ``copy`` probes for Jython with ``from org.python.core import PyStringMap``; while the
    spark-core jar is on ``sys.path`` (before this daemon drops it) that makes the jar's ``org/`` directory a
    namespace package, whose path entry inside the jar then gets a zip importer that every task's
    ``invalidate_caches`` re-reads (py-spy at 5,000 events/s: a fifth of all Python worker time).
    """
    stale = []
    for name, module in list(modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is None or spec.origin not in (None, "namespace") or spec.submodule_search_locations is None:
            continue
        try:  # a nested namespace path is recomputed from its parent's
            locations = list(spec.submodule_search_locations)
        except Exception:
            continue
        if locations and all(any(_inside(entry, archive) for archive in archives) for entry in locations):
            stale.append(name)
    for name in stale:  # after the scan: a child's path must not find its parent already gone
        modules.pop(name, None)


def _inside(entry: str, archive: str) -> bool:
    return entry == archive or entry.startswith(archive.rstrip("/") + "/")


def drop_stale_zip_importers(cache: dict[str, object], path: list[str]) -> None:
    """Forget the importers of archives no longer on ``path`` (``invalidate_caches`` re-reads every one)."""
    for key, finder in list(cache.items()):
        if isinstance(finder, zipimport.zipimporter) and finder.archive not in path:
            del cache[key]


PRELOADED = (
    "pyspark.worker",
    "pandas",
    "pyarrow",
    "great_expectations",
    "pipelines.streaming.decode_validate",
    "pipelines.streaming.entity_state",
    "pipelines.streaming.partition_sinks",
    "pipelines.streaming.scoring_pass",
)
"""Imported by the daemon before it forks: modules that start no threads on import (forking a process with
threads is unsafe), and what a worker of the streaming job needs anyway."""


def preload_and_freeze(modules: tuple[str, ...] = PRELOADED) -> None:
    """Import ``modules`` and move every object alive now out of the garbage collector's scans."""
    for module in modules:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()


STACK_DUMP_SIGNAL = signal.SIGUSR1


def dump_stacks_on_signal(signum: int = STACK_DUMP_SIGNAL) -> None:
    """On ``signum``, print every thread's Python stack to stderr, which Spark copies into the executor's log.

    Registered in the daemon, so every worker it forks inherits it: ``kill -USR1 <worker pid>`` shows where a
    stalled task waits (a Kafka call, a lock) without a debugger on the machine, and the worker carries on.
    """
    faulthandler.register(signum, all_threads=True)


if __name__ == "__main__":
    launched_with = list(sys.path)
    sys.path[:] = without_spark_archives(launched_with)
    forget_namespaces_in_archives(sys.modules, set(launched_with) - set(sys.path))  # type: ignore[arg-type]
    drop_stale_zip_importers(sys.path_importer_cache, sys.path)  # type: ignore[arg-type]
    preload_and_freeze()
    dump_stacks_on_signal()
    runpy.run_module("pyspark.daemon", run_name="__main__", alter_sys=True)
