"""The state layout a stream's checkpoint was started with, kept next to Spark's own records in it.

Spark pins some settings in the checkpoint by itself (the shuffle partitions), but not two of ours:

- the state bucket count (``stream.state_buckets``): started again with another count, the job would look entities
  up in buckets that do not hold their history, and their features would silently restart from nothing;
- how a bucket's history is kept (:data:`STATE_LAYOUT`): a checkpoint whose stateful operator is another one
  (featurestream before the chunked layout kept one value per bucket, through ``applyInPandasWithState``) cannot
  be read by this one.

A new checkpoint records both; a later start that differs is refused before any batch runs, with what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.errors import ConfigurationError

LAYOUT_FILE = "featurestream-state-layout.json"
SPARK_OFFSETS_DIR = "offsets"
"""Present once Spark has planned a batch: the checkpoint is no longer new."""
STATE_LAYOUT = "history-chunks"
"""``transformWithStateInPandas``, a list of encoded history chunks and a last-write token per bucket."""
_NEW_CHECKPOINT = "start the stream on a new checkpoint (another stream.query_name, or delete the checkpoint to "
_NEW_CHECKPOINT += "reprocess the topic)"


def check_state_layout(checkpoint: Path, state_buckets: int) -> None:
    """Record ``state_buckets`` and the layout for a new checkpoint; refuse a start whose count or layout differs
    from the recorded ones. A checkpoint Spark has used that has no record was started by a featurestream that
    kept its state in the older layout, and is refused too."""
    path = checkpoint / LAYOUT_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded.get("state_buckets") != state_buckets:
            raise ConfigurationError(
                f"the checkpoint {checkpoint} was started with stream.state_buckets={recorded.get('state_buckets')}, "
                f"this start has {state_buckets}: the entity state is partitioned by that count. Set "
                f"stream.state_buckets back to {recorded.get('state_buckets')}, or {_NEW_CHECKPOINT}"
            )
        layout = recorded.get("state_layout", "one value per bucket")
        if layout != STATE_LAYOUT:
            raise _older_layout(checkpoint, layout)
        return
    if (checkpoint / SPARK_OFFSETS_DIR).exists():
        raise _older_layout(checkpoint, "one value per bucket")
    checkpoint.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state_buckets": state_buckets, "state_layout": STATE_LAYOUT}) + "\n")


def _older_layout(checkpoint: Path, layout: str) -> ConfigurationError:
    return ConfigurationError(
        f"the checkpoint {checkpoint} keeps its entity state as {layout!r} (an older featurestream); this one keeps "
        f"{STATE_LAYOUT!r} and cannot read it: {_NEW_CHECKPOINT}"
    )
