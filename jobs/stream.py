"""The streaming feature job: Kafka -> decode -> validate (GX) -> event-time features -> Feast + dead letters.

    featurestream submit stream [--available-now]            # through the CLI (pinned jars, project Python)
    featurestream submit stream --print                      # the equivalent plain spark-submit command

Settings come from the environment / featurestream.toml (see README). With --available-now the job processes
everything in the topic and exits (a batch run on the same checkpoint); without it, it runs until stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pipelines.config import load_settings
from pipelines.spark.session import get_or_create_session
from pipelines.streaming.job import start_feature_stream


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--available-now", action="store_true", help="Drain the topic, then exit.")
    args = parser.parse_args(argv)

    settings = load_settings()
    spark = get_or_create_session(settings)
    running = start_feature_stream(spark, settings, available_now=args.available_now)
    try:
        running.query.awaitTermination()
    except KeyboardInterrupt:
        running.query.stop()
    finally:
        running.close()
    totals = {
        "batches": len(running.writer.history),
        "records_read": sum(b.records_read for b in running.writer.history),
        "valid": sum(b.valid for b in running.writer.history),
        "dead_lettered": sum(b.dead_lettered for b in running.writer.history),
        "batch_log": str(running.batch_log),
    }
    print(json.dumps(totals), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
