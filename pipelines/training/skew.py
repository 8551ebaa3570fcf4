"""Training/serving skew on any run: do the features training gets equal the ones the stream computed and serves?

For a random sample of the valid events the stream wrote (the offline ``events`` dataset), two comparisons:

- **offline**: Feast's point-in-time join (``get_historical_features`` through the model's feature service, what
  training reads) at each event's own timestamp, against the feature row the stream wrote for that very event;
- **online**: for the sampled events' entities, the online store's values (what serving reads) against the
  stream's row of that entity's latest event.

A value matches when both are null or both are numbers equal to 1e-9 relative. The skew rate is mismatched
values over compared values. Events sharing an entity and a millisecond with another event are left out (a
point-in-time join cannot tell them apart) and counted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.feast_io.paths import offline_view_path
from pipelines.streaming.partition_sinks import EVENTS_DATASET
from pipelines.training.dataset import historical_features
from pipelines.training.errors import TrainingDataError

RELATIVE_TOLERANCE = 1e-9


@dataclass
class SkewReport:
    sampled_events: int = 0
    ambiguous_events: int = 0
    offline_values: int = 0
    offline_mismatches: int = 0
    online_entities: int = 0
    online_values: int = 0
    online_mismatches: int = 0
    mismatches_by_feature: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def offline_skew_rate(self) -> float | None:
        return self.offline_mismatches / self.offline_values if self.offline_values else None

    @property
    def online_skew_rate(self) -> float | None:
        return self.online_mismatches / self.online_values if self.online_values else None


def values_match(left: Any, right: Any) -> bool:
    """Both null, or numbers equal to :data:`RELATIVE_TOLERANCE` relative."""
    left_null, right_null = _is_null(left), _is_null(right)
    if left_null or right_null:
        return left_null and right_null
    return math.isclose(float(left), float(right), rel_tol=RELATIVE_TOLERANCE)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def read_dataset(settings: Settings, dataset: str, columns: list[str]) -> pd.DataFrame:
    """One offline dataset (all batches and partitions) as pandas; the ``batch_id`` folder is not a column."""
    import pyarrow.dataset as ds

    path = offline_view_path(settings, dataset)
    if not path.is_dir() or not any(path.rglob("*.parquet")):
        raise TrainingDataError(f"no offline data at {path}: run the streaming job (`featurestream submit stream`)")
    frame: pd.DataFrame = (
        ds.dataset(str(path), format="parquet", partitioning=None).to_table(columns=columns).to_pandas()
    )
    return frame


def measure_skew(settings: Settings, sample: int = 1_000, seed: int = 0) -> SkewReport:
    """Compare a sample of the run's events offline (point-in-time join) and online (see module doc)."""
    from pipelines.feast_io.store import feature_store

    domain = get_domain(settings.stream.domain)
    time_column = domain.event_time_column
    keys = [features.key_column for features in domain.entities]
    events = read_dataset(settings, EVENTS_DATASET, ["event_id", *keys, time_column])
    ambiguous = np.zeros(len(events), dtype=bool)
    for key in keys:
        ambiguous |= events.duplicated([key, time_column], keep=False).to_numpy()
    report = SkewReport(ambiguous_events=int(ambiguous.sum()))
    candidates = events[~ambiguous]
    picked = candidates.sample(min(sample, len(candidates)), random_state=seed)
    report.sampled_events = len(picked)
    if picked.empty:
        return report

    store = feature_store(settings)
    entity_df = picked.rename(columns={time_column: "event_timestamp"})
    joined = historical_features(store, settings.models.feature_service, entity_df, "event_id").set_index("event_id")
    mismatches: Counter[str] = Counter()
    for features in domain.entities:
        streamed = read_dataset(
            settings, features.feature_view, [features.key_column, time_column, *features.feature_names]
        )
        wanted = [name for name in features.feature_names if name in joined.columns]
        rows = picked.merge(streamed, on=[features.key_column, time_column], how="left").set_index("event_id")
        for event_id, row in rows.iterrows():
            for name in wanted:
                report.offline_values += 1
                if not values_match(joined.at[event_id, name], row[name]):
                    report.offline_mismatches += 1
                    mismatches[name] += 1
                    _example(
                        report,
                        "offline",
                        features.entity,
                        row[features.key_column],
                        name,
                        joined.at[event_id, name],
                        row[name],
                    )
        _compare_online(report, store, features, streamed, picked, time_column, mismatches)
    report.mismatches_by_feature = dict(mismatches)
    return report


def _compare_online(
    report: SkewReport,
    store: Any,
    features: Any,
    streamed: pd.DataFrame,
    picked: pd.DataFrame,
    time_column: str,
    mismatches: Counter[str],
) -> None:
    ids = sorted(set(picked[features.key_column]))
    latest = (
        streamed[streamed[features.key_column].isin(ids)]
        .sort_values(time_column, kind="mergesort")
        .groupby(features.key_column)
        .tail(1)
        .set_index(features.key_column)
    )
    refs = [f"{features.feature_view}:{name}" for name in features.feature_names]
    online = store.get_online_features(features=refs, entity_rows=[{features.key_column: i} for i in ids]).to_dict()
    report.online_entities += len(ids)
    for position, entity_id in enumerate(ids):
        for name in features.feature_names:
            report.online_values += 1
            served, computed = online[name][position], latest.at[entity_id, name]
            if not values_match(served, computed):
                report.online_mismatches += 1
                mismatches[name] += 1
                _example(report, "online", features.entity, entity_id, name, served, computed)


def _example(report: SkewReport, where: str, entity: str, entity_id: Any, name: str, got: Any, want: Any) -> None:
    if len(report.examples) < 10:
        report.examples.append(
            {"where": where, "entity": entity, "id": str(entity_id), "feature": name, "got": got, "stream": want}
        )
