"""Build Spark sessions that carry the pinned connector jars and the project's Python.

Spark's Python workers run ``python3`` from PATH unless told otherwise, which on most machines is not the
virtualenv that holds pyarrow, fastavro and this package; both PYSPARK_PYTHON and the executor environment
point at the interpreter running the driver. Jars come from disk (``make jars``): nothing is resolved from a
repository when a job starts.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipelines.config import Settings
from pipelines.errors import ConfigurationError
from pipelines.stack.jars import pyspark_jars_dir, spark_connector_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def cluster_conf(settings: Settings, master: str) -> dict[str, str]:
    """What a cluster master (not ``local[...]``) needs on top: executors on other hosts or in other processes.

    Jars in ``spark.jars`` are served by the driver and fetched by every executor into its own work directory, and
    the job's Python code travels pickled with its tasks, so executors need no shared filesystem for either. The
    Python interpreter must exist on every node at the same path (here the project's virtualenv; on Kubernetes the
    image's, see infra/k8s). For a master on loopback the driver advertises loopback too, so executors on this
    machine can reach it whatever the host name resolves to.
    """
    if master.startswith("local"):
        return {
            # Spill and warehouse stay under the state dir, never a shared /tmp path. (A cluster manager sets
            # each executor's scratch directories itself.)
            "spark.local.dir": str(settings.stack.state_dir / "spark-local"),
        }
    conf = {"spark.executor.memory": settings.spark.executor_memory}
    if urlsplit(master.split(",")[0]).hostname in {"127.0.0.1", "localhost", settings.stack.host}:
        conf["spark.driver.host"] = settings.stack.host
        conf["spark.driver.bindAddress"] = settings.stack.host
    return conf


LOCAL_JVM_OPTIONS = "-XX:+UseParallelGC -XX:MetaspaceSize=256m"
"""On a local master the driver JVM runs every task: G1's write barriers and concurrent threads cost CPU that a
saturated machine's throughput feels (measured with scoring: 26,452-26,504 events/s against 24,819-25,308). Spark
loads ~140 MB of class metadata in a streaming job's first minute; from the JVM's default 21 MB threshold on, each
step of that growth stopped every thread for a full collection (five in a latency run's first 65 s, 26-198 ms each,
GC log, 2026-12-08); a 256 MB threshold lets it grow without them. The whole heap is also committed from the start
(:func:`initial_heap_option`)."""

_SIZE = re.compile(r"(?i)^\s*(\d+)\s*([kmgt]?)b?\s*$")
_MIB_PER_UNIT = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def initial_heap_option(memory: str) -> str:
    """``-Xms`` of the same size as ``spark.driver.memory`` (Spark's size syntax: ``2g``, ``2048m``, ``2gb``; no
    unit means MiB), for a local master's one JVM.

    Started small, the parallel collector sizes the old generation to what survives, so the objects a stream
    promotes steadily (~2.5 MB/s in the latency benchmark) filled it from ~95 s on, about every 100 s, and every thread
    stopped for a full collection (0.27-0.40 s each, GC logs, 2026-12-08), a pause added to every score in flight.
    With the heap committed from the start, a 300 s run had none (its GC log). Committed is not resident: the
    pages are touched only as the heap is used."""
    match = _SIZE.match(memory)
    if match is None:
        raise ConfigurationError(f"spark.driver_memory {memory!r} is not a size such as 2g or 2048m")
    mib = int(int(match.group(1)) * _MIB_PER_UNIT[match.group(2).lower()])
    return f"-Xms{max(mib, 1)}m"


CHECKPOINT_FILE_MANAGER = "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"


def jvm_conf(settings: Settings, master: str) -> dict[str, str]:
    """``spark.jvm_options`` for the driver and executors; unset, on a local master only, the parallel collector
    and a metaspace threshold above Spark's classes, and for the driver (the JVM that runs every task) its whole
    heap committed from the start (executors, as in ``local-cluster``, have heaps of their own size)."""
    options = settings.spark.jvm_options
    if options is not None:
        return {"spark.driver.extraJavaOptions": options, "spark.executor.extraJavaOptions": options}
    if not master.startswith("local"):
        return {}
    driver = f"{LOCAL_JVM_OPTIONS} {initial_heap_option(settings.spark.driver_memory)}"
    return {"spark.driver.extraJavaOptions": driver, "spark.executor.extraJavaOptions": LOCAL_JVM_OPTIONS}


def spark_conf(settings: Settings, *, master: str | None = None) -> dict[str, str]:
    """The Spark configuration every featurestream job runs with (also used to build spark-submit flags), with
    ``spark.extra_conf`` on top; an extra key that featurestream manages is a configuration error."""
    managed = managed_spark_conf(settings, master=master)
    clashing = sorted(set(settings.spark.extra_conf) & set(managed))
    if clashing:
        raise ConfigurationError(
            f"spark.extra_conf sets {', '.join(clashing)}, which featurestream manages: use the matching "
            "featurestream setting (see pipelines/spark/session.py) instead"
        )
    return {**managed, **settings.spark.extra_conf}


def managed_spark_conf(settings: Settings, *, master: str | None = None) -> dict[str, str]:
    """The settings featurestream derives from its own configuration."""
    jars = spark_connector_jars(settings.stack.jars_dir, pyspark_jars_dir())
    python = sys.executable
    master = master or settings.spark.master
    return {
        "spark.master": master,
        "spark.app.name": settings.spark.app_name,
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Every Python stage (decode + GX, entity state, the sinks, scoring) has a cost per Arrow batch; 50,000-row
        # batches instead of Spark's 10,000: +3.5% events/s with scoring, less Python worker CPU (README, scoring).
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(settings.spark.arrow_batch_rows),
        # Exactly-once sinks key their Kafka transactions by partition id: a replayed batch must be split the
        # same way, so no adaptive re-planning of joins or partition coalescing inside foreachBatch.
        "spark.sql.adaptive.enabled": "false",
        "spark.ui.enabled": str(settings.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
        "spark.executorEnv.PYARROW_IGNORE_TIMEZONE": "1",
        # Workers import pyspark from the virtualenv, not from the zip Spark ships (see the module's docstring).
        "spark.python.daemon.module": "pipelines.spark.worker_daemon",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        # Each commit writes a changelog of the batch's updates instead of flushing RocksDB and uploading new
        # SST files; snapshots are taken in the background (measured: state commit 0.29 -> 0.09 s per batch).
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # transformWithStateInPandas in event-time mode would run an extra micro-batch without data whenever the
        # watermark moved, to fire timers; the job registers none, so such a batch would only cost a cycle and leave
        # an empty line in the run log (seen: the demo's backlog took 2 batches, the second empty).
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        # Checkpoint files (offset and commit logs, state changelogs) through Hadoop's FileSystem API rather than
        # FileContext: without Hadoop's native library (not shipped with pyspark), FileContext's rename runs the
        # readlink command for each path, ~11 processes spawned per micro-batch (strace). Measured at 5,000
        # events/s: walCommit 0.050 -> 0.017 s, commitOffsets 0.045 -> 0.015 s, state commit 0.093 -> 0.002 s.
        # Renames on the local filesystem are atomic, which is all this manager relies on.
        "spark.sql.streaming.checkpointFileManagerClass": CHECKPOINT_FILE_MANAGER,
        # Parquet timestamps marked UTC-adjusted: Spark's default INT96 reads back zone-less, and Feast's
        # point-in-time join cannot compare that with UTC entity timestamps.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.warehouse.dir": str(settings.stack.state_dir / "spark-warehouse"),
        **jvm_conf(settings, master),
        **cluster_conf(settings, master),
    }


def get_or_create_session(settings: Settings, *, master: str | None = None) -> SparkSession:
    """A SparkSession configured by :func:`spark_conf` (reused if one is already active in this process)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    if master is None and "PYSPARK_GATEWAY_PORT" in os.environ:
        # Launched by spark-submit: its --master is the one to run on (`featurestream submit --master ...`);
        # the settings' master would silently override it here.
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()  # connects to spark-submit's JVM, whose system properties hold --master
        master = SparkConf().get("spark.master", None)
    Path(settings.stack.state_dir / "spark-local").mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    for key, value in spark_conf(settings, master=master).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.spark.log_level)
    return session


def checkpoint_dir(settings: Settings, job: str, query: str) -> Path:
    """One checkpoint folder per job and query under the configured root."""
    return settings.checkpoint_root / job / query
