"""The state layout a stream's checkpoint was started with, kept next to Spark's own records in it.

Spark pins some settings in the checkpoint by itself (the shuffle partitions), but not the state bucket count
(``stream.state_buckets``), which is ours: started again with another count, the job would look entities up in
buckets that do not hold their history, and their features would silently restart from nothing. A new
checkpoint records the count; a later start with another count is refused before any batch runs. (The state
codec refuses it too, at the first batch, for a checkpoint started before this file existed.)
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.errors import ConfigurationError

LAYOUT_FILE = "featurestream-state-layout.json"
SPARK_OFFSETS_DIR = "offsets"
"""Present once Spark has planned a batch: the checkpoint is no longer new."""


def check_state_layout(checkpoint: Path, state_buckets: int) -> None:
    """Record ``state_buckets`` for a new checkpoint; refuse a start whose count differs from the recorded one.

    A checkpoint Spark has already used but that has no record (started by an older featurestream) is left
    alone: its count is unknown here, and the state codec checks it at the first batch.
    """
    path = checkpoint / LAYOUT_FILE
    if path.is_file():
        recorded = json.loads(path.read_text()).get("state_buckets")
        if recorded != state_buckets:
            raise ConfigurationError(
                f"the checkpoint {checkpoint} was started with stream.state_buckets={recorded}, this start has "
                f"{state_buckets}: the entity state is partitioned by that count. Set stream.state_buckets back "
                f"to {recorded}, or start the stream on a new checkpoint (another stream.query_name, or delete "
                "the checkpoint to reprocess the topic)"
            )
        return
    if (checkpoint / SPARK_OFFSETS_DIR).exists():
        return
    checkpoint.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state_buckets": state_buckets}) + "\n")
