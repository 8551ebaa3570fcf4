"""Smoke job: read one topic from the beginning with Spark's Kafka source and report what it saw.

    spark-submit ... jobs/smoke.py --topic NAME

Runs once over everything available (trigger availableNow, read_committed), then prints one JSON line with
the record count and per-partition offsets, so the caller can check that exactly the produced records
arrived.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence

from pipelines.config import load_settings
from pipelines.spark.kafka_source import read_kafka_stream
from pipelines.spark.session import get_or_create_session


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args(argv)

    settings = load_settings()
    spark = get_or_create_session(settings)
    stream = read_kafka_stream(spark, settings, args.topic)
    with tempfile.TemporaryDirectory(dir=settings.stack.state_dir, prefix="smoke-checkpoint-") as checkpoint:
        query = (
            stream.selectExpr("partition", "offset", "CAST(value AS STRING) AS value")
            .writeStream.format("memory")
            .queryName("smoke_records")
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        try:
            query.awaitTermination()
        finally:
            query.stop()
    rows = spark.sql(
        "SELECT partition, COUNT(*) AS n, MIN(offset) AS first, MAX(offset) AS last "
        "FROM smoke_records GROUP BY partition ORDER BY partition"
    ).collect()
    report = {
        "topic": args.topic,
        "records": sum(row["n"] for row in rows),
        "partitions": {str(row["partition"]): [row["first"], row["last"]] for row in rows},
    }
    print(json.dumps(report), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
