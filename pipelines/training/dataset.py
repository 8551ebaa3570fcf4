"""The training set: labelled events, their point-in-time features from Feast, and a split by event time.

1. Labels known at the cut-off (:mod:`pipelines.training.labels`) are joined by event id to the streaming job's
   offline ``events`` dataset, which supplies each event's entity keys and event time.
2. Feast's ``get_historical_features`` (the model's feature service) gives, for each labelled event, each view's
   latest feature row with event time at or before the event's: the row the streaming job computed for that
   very event (its window includes the event, as at serving time), never one computed from later events.
3. The split is by event time, with clean boundaries and nothing shuffled across them, as the model will be
   used: on events after the ones it learnt from. The latest ``test_fraction`` of the events test, the
   ``validation_fraction`` before them validate (early stopping and the alert threshold are chosen there), the
   earlier ones train. The test rows take part in no choice, so their metrics at the chosen threshold are an
   honest estimate; the validation metrics are optimistic by construction.

Rows are never lost or hollowed out quietly: Feast 0.67's file offline store drops entity rows that have no
feature row at or before their timestamp (its DuckDB store returns nulls), so the join's row count is checked,
and so is that every event found a row in every view (the stream writes one per event): either is an error.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.feast_io.paths import feast_paths
from pipelines.feast_io.store import feature_store
from pipelines.streaming.partition_sinks import EVENTS_DATASET
from pipelines.training.errors import InsufficientTrainingDataError, TrainingDataError
from pipelines.training.labels import LABEL, LABEL_TIME, available_labels

if TYPE_CHECKING:
    from feast import FeatureStore

ENTITY_TIMESTAMP = "event_timestamp"
"""The timestamp column of Feast's entity dataframe."""
IS_VALIDATION = "is_validation"
IS_TEST = "is_test"


@dataclass(frozen=True)
class ServiceColumns:
    """What a feature service reads: its features in the model's column order, and the entity keys it joins on."""

    feature_names: tuple[str, ...]
    join_keys: tuple[str, ...]
    views: tuple[tuple[str, tuple[str, ...]], ...]
    """(view name, its features in the service), in service order."""


@dataclass(frozen=True)
class DatasetStats:
    """How the labels became training rows; every label is accounted for."""

    labels: int
    after_cutoff: int
    superseded: int
    without_event: int
    label_before_event: int
    rows: int


@dataclass(frozen=True)
class TrainingSet:
    """Rows sorted by event time: event id, event time, entity keys, features, ``label``, ``is_validation`` and
    (when there is a test split) ``is_test``."""

    frame: pd.DataFrame
    feature_names: tuple[str, ...]
    feature_service: str
    event_id_column: str
    event_time_column: str
    label_cutoff: datetime
    validation_start: datetime
    fingerprint: str
    stats: DatasetStats
    test_start: datetime | None = None
    """Rows at or after this event time test; None without a test split."""

    @property
    def train(self) -> pd.DataFrame:
        return self.frame[~self.frame[IS_VALIDATION] & ~test_mask(self.frame)]

    @property
    def validation(self) -> pd.DataFrame:
        return self.frame[self.frame[IS_VALIDATION]]

    @property
    def test(self) -> pd.DataFrame:
        return self.frame[test_mask(self.frame)]

    @property
    def window(self) -> tuple[datetime, datetime]:
        times = self.frame[self.event_time_column]
        return times.min().to_pydatetime(), times.max().to_pydatetime()


def service_columns(store: FeatureStore, service_name: str) -> ServiceColumns:
    """The service's features in projection order (views as listed in the service, features as in each view)."""
    try:
        service = store.get_feature_service(service_name, allow_cache=False)
    except Exception as exc:  # Feast raises its own FeatureServiceNotFoundException
        raise TrainingDataError(
            f"feature service {service_name!r} is not in Feast's registry: run `featurestream features apply` ({exc})"
        ) from exc
    features: list[str] = []
    keys: list[str] = []
    views: list[tuple[str, tuple[str, ...]]] = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name, allow_registry_cache=False)
        keys += [projection.join_key_map.get(column.name, column.name) for column in view.entity_columns]
        names = tuple(feature.name for feature in projection.features)
        features += names
        views.append((projection.name_to_use(), names))
    duplicated = sorted({name for name in features if features.count(name) > 1})
    if duplicated:
        raise TrainingDataError(f"feature service {service_name!r} has features of the same name: {duplicated}")
    return ServiceColumns(tuple(features), tuple(dict.fromkeys(keys)), tuple(views))


def read_events(settings: Settings, event_ids: Sequence[str], columns: Sequence[str], event_id: str) -> pd.DataFrame:
    """The offline events with these ids (all batches; the ``batch_id`` folder name is not read as a column)."""
    import pyarrow.dataset as ds

    path = feast_paths(settings).offline_root / EVENTS_DATASET
    if not path.is_dir() or not any(path.rglob("*.parquet")):
        raise TrainingDataError(f"no offline events at {path}: run the streaming job (`featurestream submit stream`)")
    # Default ignore_prefixes skip Spark's _SUCCESS, .crc files and an interrupted write's _temporary folder.
    dataset = ds.dataset(str(path), format="parquet", partitioning=None)
    missing = [column for column in columns if column not in dataset.schema.names]
    if missing:
        raise TrainingDataError(f"offline events at {path} lack column(s) {missing}")
    table = dataset.to_table(columns=list(columns), filter=ds.field(event_id).isin(list(event_ids)))
    events: pd.DataFrame = table.to_pandas()
    return events


def test_mask(frame: pd.DataFrame) -> np.ndarray:
    """True on the test rows; all False for a frame without a test split."""
    if IS_TEST not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame[IS_TEST].to_numpy(dtype=bool)


def time_split(times: pd.Series, fraction: float, split: str = "validation") -> tuple[pd.Timestamp, np.ndarray]:
    """The split's start (an event time) and its mask: the latest ``fraction`` of rows, moved forward to a whole
    timestamp so that no event time lies on both sides."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the {split} fraction must be between 0 and 1")
    ordered = times.sort_values(kind="mergesort").reset_index(drop=True)
    if len(ordered) < 2:
        raise InsufficientTrainingDataError(f"{len(ordered)} labelled event(s) cannot be split into train and {split}")
    start = ordered.iloc[len(ordered) - max(1, math.ceil(len(ordered) * fraction))]
    mask = (times >= start).to_numpy()
    if mask.all():
        raise InsufficientTrainingDataError(
            f"every labelled event left for the {split} split has the same event time {start}: nothing to train on"
        )
    return start, mask


def three_way_split(
    times: pd.Series, validation_fraction: float, test_fraction: float
) -> tuple[pd.Timestamp, np.ndarray, pd.Timestamp | None, np.ndarray]:
    """(validation start, validation mask, test start, test mask): the latest ``test_fraction`` of rows test (none
    when it is 0), the ``validation_fraction`` of all rows just before them validate; whole timestamps throughout."""
    if test_fraction <= 0:
        start, validation = time_split(times, validation_fraction)
        return start, validation, None, np.zeros(len(times), dtype=bool)
    test_start, test = time_split(times, test_fraction, "test")
    before = times[~test]
    validation_start, earlier_validation = time_split(before, validation_fraction / (1 - test_fraction))
    validation = np.zeros(len(times), dtype=bool)
    validation[np.flatnonzero(~test)[earlier_validation]] = True
    return validation_start, validation, test_start, test


def data_fingerprint(frame: pd.DataFrame, feature_names: Sequence[str], event_id: str) -> str:
    """sha256 over the rows in event-id order: ids, split, labels and feature values (NaN canonicalised).

    The same labelled events with the same features and split give the same fingerprint whatever the row
    order of the inputs, so two versions trained on the same data say so.
    """
    ordered = frame.sort_values(event_id, kind="mergesort")
    digest = hashlib.sha256()
    digest.update(json.dumps({"features": list(feature_names), "rows": len(ordered)}).encode())
    digest.update("\x1f".join(ordered[event_id].astype(str)).encode())
    digest.update(ordered[LABEL].to_numpy(dtype=np.int8).tobytes())
    digest.update(ordered[IS_VALIDATION].to_numpy(dtype=np.bool_).tobytes())
    if IS_TEST in ordered:
        digest.update(ordered[IS_TEST].to_numpy(dtype=np.bool_).tobytes())
    values = feature_matrix(ordered, feature_names)
    digest.update(np.where(np.isnan(values), np.nan, values).tobytes())
    return digest.hexdigest()


def feature_matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """The model's input: float64, nulls as NaN (XGBoost's missing value), columns in the given order."""
    return np.ascontiguousarray(frame[list(feature_names)].to_numpy(dtype=np.float64, na_value=np.nan))


def historical_features(store: FeatureStore, service_name: str, entity_df: pd.DataFrame, event_id: str) -> pd.DataFrame:
    """Feast's point-in-time join for every entity row; raises if any row went missing."""
    service = store.get_feature_service(service_name, allow_cache=False)
    try:
        joined: pd.DataFrame = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    except NotImplementedError as exc:  # the file (Dask) store's "Divisions calculation failed"
        raise TrainingDataError(
            f"Feast's offline store could not join {len(entity_df)} entity rows ({exc}); Feast 0.67's file (Dask) "
            "store fails so when an entity has no feature rows at all: use the duckdb offline store"
        ) from exc
    lost = set(entity_df[event_id]) - set(joined[event_id])
    if len(joined) != len(entity_df) or lost:
        raise TrainingDataError(
            f"Feast's point-in-time join returned {len(joined)} rows for {len(entity_df)} labelled events "
            f"({len(lost)} missing, e.g. {sorted(lost)[:3]}). Feast 0.67's file (Dask) offline store drops entity "
            "rows with no feature row at or before their timestamp; every streamed event has its own row, so the "
            "offline store is missing data (a batch not written, or events from another store)"
        )
    return joined


def require_feature_rows(joined: pd.DataFrame, columns: ServiceColumns, event_id: str) -> None:
    """Every labelled event must have found a row in every view: the one the stream wrote for it.

    A row whose features of one view are all null found no feature row at or before its time (Feast's DuckDB
    store returns nulls there, its file store drops the row). Serving never sees such a row, because the stream
    scores every event with the features it has just computed for it, so training on one would teach the model
    something it will never be asked.
    """
    for view, names in columns.views:
        empty = joined[list(names)].isna().all(axis=1)
        if empty.any():
            examples = joined.loc[empty, event_id].head(3).tolist()
            raise TrainingDataError(
                f"{int(empty.sum())} labelled event(s) have no {view} row at or before their event time "
                f"(e.g. {examples}): the offline store lacks rows the streaming job writes for every event"
            )


def build_training_set(
    settings: Settings,
    labels: pd.DataFrame,
    cutoff: datetime,
    *,
    store: FeatureStore | None = None,
) -> TrainingSet:
    """Labels (as read, any number per event) -> point-in-time features -> time-split training set."""
    models = settings.models
    domain = get_domain(settings.stream.domain)
    event_id, event_time = domain.event_id_column, domain.event_time_column
    store = store or feature_store(settings)
    columns = service_columns(store, models.feature_service)

    available = available_labels(labels, cutoff, event_id)
    known = available.frame
    if known.empty:
        raise InsufficientTrainingDataError(
            f"no labels known at {cutoff.isoformat()}: {len(labels)} read, {available.after_cutoff} of them later"
        )
    events = read_events(settings, known[event_id].tolist(), [event_id, *columns.join_keys, event_time], event_id)
    events = events.drop_duplicates(subset=[event_id], keep="last")  # one row per event unless a batch was doubled
    matched = known[[event_id, LABEL, LABEL_TIME]].merge(events, on=event_id, how="inner", validate="one_to_one")
    # The labels schema promises label_time after event_time; a label claiming otherwise is not trusted.
    consistent = (matched[LABEL_TIME] >= matched[event_time]).to_numpy()
    labelled = matched[consistent]
    if labelled.empty:
        raise InsufficientTrainingDataError(
            f"none of the {len(known)} labels known at {cutoff.isoformat()} matches an event in the offline store"
        )

    entity_df = labelled[[event_id, *columns.join_keys]].assign(**{ENTITY_TIMESTAMP: labelled[event_time]})
    joined = historical_features(store, models.feature_service, entity_df, event_id)
    require_feature_rows(joined, columns, event_id)
    frame = labelled.merge(
        joined[[event_id, *columns.feature_names]], on=event_id, how="inner", validate="one_to_one"
    ).sort_values([event_time, event_id], kind="mergesort", ignore_index=True)

    validation_start, is_validation, test_start, is_test = three_way_split(
        frame[event_time], models.validation_fraction, models.test_fraction
    )
    frame[IS_VALIDATION] = is_validation
    if test_start is not None:
        frame[IS_TEST] = is_test
    _require_both_classes(frame)
    stats = DatasetStats(
        labels=len(labels),
        after_cutoff=available.after_cutoff,
        superseded=available.superseded,
        without_event=len(known) - len(matched),
        label_before_event=int((~consistent).sum()),
        rows=len(frame),
    )
    return TrainingSet(
        frame=frame,
        feature_names=columns.feature_names,
        feature_service=models.feature_service,
        event_id_column=event_id,
        event_time_column=event_time,
        label_cutoff=available.cutoff,
        validation_start=validation_start.to_pydatetime(),
        fingerprint=data_fingerprint(frame, columns.feature_names, event_id),
        stats=stats,
        test_start=test_start.to_pydatetime() if test_start is not None else None,
    )


def _require_both_classes(frame: pd.DataFrame) -> None:
    test = test_mask(frame)
    parts = [("training", frame[~frame[IS_VALIDATION] & ~test]), ("validation", frame[frame[IS_VALIDATION]])]
    if test.any():
        parts.append(("test", frame[test]))
    for name, part in parts:
        positives = int(part[LABEL].sum())
        if positives == 0 or positives == len(part):
            raise InsufficientTrainingDataError(
                f"the {name} split has {len(part)} rows of which {positives} positive: it needs both classes "
                "(more labelled history, or a later label cut-off"
                + (", or models.test_fraction 0 for no test split)" if name == "test" else ")")
            )
