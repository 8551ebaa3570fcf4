"""featurestream's library: Kafka I/O, Avro serde, validation, transforms, Feast writers, scoring, metrics.

Folder names tell the architecture: ``kafka`` (client configs, topics), ``stack`` (the embedded broker),
``spark`` (sessions, sources, spark-submit), ``cli`` (the `featurestream` command).
"""

__version__ = "0.1.0"
