"""Train the model on point-in-time features of labelled events and register it (no Spark needed).

    python jobs/train.py [--promote] [--label-cutoff 2026-11-20T00:00:00Z]
    featurestream train [--promote] [--label-cutoff ...]          # the same, with progress and tables

Labels come from the labels topic (read_committed, up to its end), features from Feast's offline store through
the model's feature service (settings ``models.*``). Prints one JSON line: version, rows, validation metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pipelines.config import load_settings
from pipelines.training.run import parse_cutoff, run_training


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--promote", action="store_true", help="Make the new version production.")
    parser.add_argument("--label-cutoff", help="Only labels known by this ISO 8601 time (default: now).")
    args = parser.parse_args(argv)

    run = run_training(
        load_settings(),
        label_cutoff=parse_cutoff(args.label_cutoff) if args.label_cutoff else None,
        promote=args.promote,
        stage=lambda message: print(message, file=sys.stderr, flush=True),
    )
    training = run.version.metadata.training
    print(
        json.dumps(
            {
                "model": run.version.model_name,
                "version": run.version.version,
                "promoted": run.promoted,
                "rows": training.rows.model_dump(),
                "validation": training.validation_metrics.model_dump(exclude={"calibration"}),
                "test": training.test_metrics.model_dump(exclude={"calibration"}) if training.test_metrics else None,
                "data_fingerprint": training.data_fingerprint,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
