"""End-to-end smoke of the embedded stack: transactional produce, then a Spark job reads it back.

This is what `make demo` runs until the full demo exists: it proves the broker, transactions, Spark's
Kafka connector and the jar wiring all work together on this machine.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass

from confluent_kafka import Producer

from pipelines.config import Settings
from pipelines.errors import FeaturestreamError
from pipelines.kafka.client_config import producer_config
from pipelines.kafka.topics import admin_client, delete_topics, ensure_topics
from pipelines.spark.submit import spark_submit_argv
from pipelines.stack.processes import child_environment


class SmokeFailedError(FeaturestreamError):
    """The records read back were not exactly the records produced."""


@dataclass(frozen=True)
class SmokeResult:
    topic: str
    produced: int
    read_back: int
    aborted: int


def produce_committed_and_aborted(settings: Settings, topic: str, committed: int, aborted: int) -> None:
    """Commit ``committed`` records in one transaction and abort ``aborted`` more in another."""
    producer = Producer(producer_config(settings, transactional_id=f"featurestream-smoke-{uuid.uuid4()}"))
    producer.init_transactions(30)
    for count, commit in ((committed, True), (aborted, False)):
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, key=str(i).encode(), value=json.dumps({"n": i, "committed": commit}).encode())
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)


def run_smoke(settings: Settings, records: int = 1000, aborted: int = 100) -> SmokeResult:
    topic = f"featurestream-smoke-{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings)
    ensure_topics(
        admin,
        [topic],
        partitions=settings.kafka.partitions,
        replication_factor=settings.kafka.replication_factor,
    )
    try:
        produce_committed_and_aborted(settings, topic, records, aborted)
        completed = subprocess.run(
            spark_submit_argv(settings, "smoke", ["--topic", topic]),
            capture_output=True,
            text=True,
            check=False,
            env=child_environment(),
        )
        if completed.returncode != 0:
            raise SmokeFailedError(f"the smoke Spark job failed:\n{completed.stderr[-4000:]}")
        report_line = next((line for line in reversed(completed.stdout.splitlines()) if line.startswith("{")), None)
        if report_line is None:
            raise SmokeFailedError(f"the smoke job printed no report:\n{completed.stdout[-2000:]}")
        read_back = int(json.loads(report_line)["records"])
    finally:
        delete_topics(admin, [topic])
    result = SmokeResult(topic=topic, produced=records, read_back=read_back, aborted=aborted)
    if read_back != records:
        raise SmokeFailedError(
            f"Spark read {read_back} records from {topic}, expected exactly the {records} committed ones"
        )
    return result
