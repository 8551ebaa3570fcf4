"""Spark's Python worker daemon, with pyspark imported from site-packages and no archive left on ``sys.path``.

Spark puts its ``pyspark.zip``, the py4j zip and the spark-core jar (5,261 entries, no Python in it) first on the
workers' ``PYTHONPATH``, and every task begins with ``importlib.invalidate_caches()``
(``pyspark.worker_util.setup_spark_files``). On Python 3.11 that re-reads, in pure Python, the whole directory of
every archive once for every package path imported from it: measured with py-spy on this job's workers, a third
of all Python worker time went there, on every task of every micro-batch. The pip-installed pyspark in the
project's virtualenv is the same code as the zip it ships, so the workers import it from there, and the archives'
importers are dropped from the import system's cache.

Used through ``spark.python.daemon.module`` (see :func:`pipelines.spark.session.spark_conf`); Spark starts it as
``python -m pipelines.spark.worker_daemon pyspark.worker``.
"""

from __future__ import annotations

import runpy
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


def drop_stale_zip_importers(cache: dict[str, object], path: list[str]) -> None:
    """Forget the importers of archives no longer on ``path`` (``invalidate_caches`` re-reads every one)."""
    for key, finder in list(cache.items()):
        if isinstance(finder, zipimport.zipimporter) and finder.archive not in path:
            del cache[key]


if __name__ == "__main__":
    sys.path[:] = without_spark_archives(sys.path)
    drop_stale_zip_importers(sys.path_importer_cache, sys.path)  # type: ignore[arg-type]
    runpy.run_module("pyspark.daemon", run_name="__main__", alter_sys=True)
