"""Score every valid event of a micro-batch in the same Spark job as the writes, after one shuffle.

An event's features are split across entity rows (its card's row, its merchant's row) that the stateful stage
left in different partitions. The write pass's output (statistics rows and the slim scoring rows) is hash
partitioned by the event's source coordinates, so each event's rows meet in one partition; there
:class:`ScoringPass` pairs them (an Arrow hash join), scores the events with the production model and, if one is
set, the challenger, and publishes each model's scores in one exactly-once transaction per (batch, partition).
The statistics rows pass through unchanged, so the driver collects one small result for the whole batch.

One job, one shuffle: the write pass runs once, with no cached copy of its output and no second job (a join of
two filtered views of the write pass would scan it twice, or need it cached). A replayed batch has the same rows,
hence the same partitions, so each transaction key names the same events again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.domains.base import Domain
from pipelines.scoring.scorer import SCORE_STATS_DDL, ScorePublisher
from pipelines.spark.arrow_batches import arrow_schema
from pipelines.streaming import columns as C
from pipelines.streaming.partition_sinks import STATS

PARTITION_KEY = ("src_partition", "src_offset")
"""An event's source coordinates: its entity rows share them, and they are unique within the batch."""
ROLE = "model_role"
SECONDS = "pass_seconds"
OUTPUT_DDL = f"{STATS} string, {ROLE} string, {SCORE_STATS_DDL}, {SECONDS} double"
"""Per partition: the write pass's statistics rows passed through (``model_role`` null), then one row per model
with what it published and the executor time of this partition's whole scoring pass."""


def event_rows(slim: pa.Table, domain: Domain) -> pa.Table:
    """One row per event from its entity rows: who and when (from the first entity's row) and every entity's
    features side by side. Pure; an event missing any entity's row is not scored (none is, by construction)."""
    first, *others = domain.entities
    entity = slim.column(C.ENTITY)
    events = (
        slim.filter(pc.equal(entity, first.entity))
        .select([*PARTITION_KEY, "event_id", C.ENTITY_ID, C.EVENT_TIME_MS, *first.feature_names])
        .rename_columns([*PARTITION_KEY, "event_id", first.key_column, "event_time_ms", *first.feature_names])
    )
    for features in others:
        side = slim.filter(pc.equal(entity, features.entity)).select([*PARTITION_KEY, *features.feature_names])
        events = events.join(side, keys=list(PARTITION_KEY), join_type="inner", use_threads=False)
    return events


@dataclass(frozen=True)
class ScoringModelRole:
    """A model's role in this batch (``production`` or ``challenger``) and the publisher of its scores."""

    role: str
    publisher: ScorePublisher


class ScoringPass:
    """The ``mapInArrow`` function after the shuffle; picklable (the domain and the publishers)."""

    def __init__(self, domain: Domain, models: Sequence[ScoringModelRole]) -> None:
        self.domain = domain
        self.models = list(models)
        self.schema = arrow_schema(OUTPUT_DDL)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        clock = time.perf_counter()
        materialised = [batch for batch in batches if batch.num_rows]
        if not materialised:  # an empty partition publishes nothing and opens no transaction
            return
        table = pa.Table.from_batches(materialised)
        stats = table.column(STATS)
        passed = table.filter(pc.is_valid(stats)).column(STATS).to_pylist()
        events = event_rows(table.filter(pc.is_null(stats)), self.domain)
        rows: list[dict[str, object]] = [{STATS: text} for text in passed]
        published = [{ROLE: model.role, **model.publisher.publish(events, partition)} for model in self.models]
        seconds = time.perf_counter() - clock
        rows.extend({**row, SECONDS: seconds} for row in published)
        yield pa.RecordBatch.from_pylist(rows, schema=self.schema)
