"""featurestream's library: Kafka I/O, Avro serde, validation, transforms, Feast writers, scoring, metrics.

Folder names tell the architecture: ``kafka`` (client configs, topics), ``stack`` (the embedded broker),
``spark`` (sessions, sources, spark-submit), ``cli`` (the `featurestream` command).
"""

# prometheus_client picks where metric values live once, when it is first imported: in the process, or in
# shared mmap files when PROMETHEUS_MULTIPROC_DIR is set. Importing Feast sets that variable (for its
# Gunicorn workers) and then imports prometheus_client, so whichever of the two came first decided it for the
# whole process; in multiprocess mode every metric with the same name and labels shares one value across
# registries, and two PipelineMetrics (two jobs in one process, or two tests) add up each other's counts.
# Importing it here, before anything of ours can import Feast, keeps our private registries independent
# (unless the variable was set on purpose before the process started).
import prometheus_client.values  # noqa: F401

__version__ = "0.1.0"
