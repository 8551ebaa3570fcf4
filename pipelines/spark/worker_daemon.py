"""Spark's Python worker daemon, started with pyspark imported from site-packages instead of ``pyspark.zip``.

Spark puts its own ``pyspark.zip`` and py4j zip first on the workers' ``PYTHONPATH``, and every task begins with
``importlib.invalidate_caches()`` (``pyspark.worker_util.setup_spark_files``). On Python 3.11 that re-reads the
whole zip directory (1,220 entries for pyspark 4.0) once for every package imported from the zip, in pure
Python: measured with py-spy on this job's workers, a third of all Python worker time went there, on every task
of every micro-batch. The pip-installed pyspark in the project's virtualenv is the same code as the zip it ships,
so the workers import it from there and no zip importer is left to re-read.

Used through ``spark.python.daemon.module`` (see :func:`pipelines.spark.session.spark_conf`); Spark starts it
as ``python -m pipelines.spark.worker_daemon pyspark.worker``.
"""

from __future__ import annotations

import runpy
import sys
from importlib.machinery import PathFinder
from pathlib import PurePath


def without_spark_zips(path: list[str]) -> list[str]:
    """``sys.path`` without the zips Spark ships under ``python/lib`` (pyspark.zip, py4j-*.zip), if pyspark can
    be imported without them; else unchanged (a Spark distribution whose Python has no pyspark installed)."""
    kept = [entry for entry in path if not (entry.endswith(".zip") and PurePath(entry).parent.name == "lib")]
    return kept if PathFinder.find_spec("pyspark", kept) is not None else list(path)


if __name__ == "__main__":
    sys.path[:] = without_spark_zips(sys.path)
    runpy.run_module("pyspark.daemon", run_name="__main__", alter_sys=True)
