"""The drift baseline registered with each model: features and scores of the traffic the model was trained in.

The labelled events are a biased sample of traffic (every fraud is labelled, genuine payments only in part), so
the baseline is built from a uniform random sample of *all* valid events the stream wrote in the training
window, with their point-in-time features (the same join training uses) and the new model's scores on them.
Live traffic is later compared with this (:mod:`pipelines.observability.drift`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.observability.drift import BASELINE_FILE, DriftBaseline, build_baseline
from pipelines.streaming.partition_sinks import EVENTS_DATASET
from pipelines.training.dataset import feature_matrix, historical_features
from pipelines.training.skew import read_dataset

BASELINE_EVENTS = 5_000


def traffic_baseline(
    settings: Settings,
    booster: xgb.Booster,
    feature_names: tuple[str, ...],
    window: tuple[datetime, datetime],
    rows: int = BASELINE_EVENTS,
    seed: int = 0,
) -> DriftBaseline:
    """Baseline of ``rows`` random valid events with event time inside ``window`` (training's window)."""
    from pipelines.feast_io.store import feature_store

    domain = get_domain(settings.stream.domain)
    keys = [features.key_column for features in domain.entities]
    time_column = domain.event_time_column
    events = read_dataset(settings, EVENTS_DATASET, ["event_id", *keys, time_column])
    start, end = (pd.Timestamp(moment) for moment in window)
    inside = events[(events[time_column] >= start) & (events[time_column] <= end)]
    picked = inside.sample(min(rows, len(inside)), random_state=seed).rename(columns={time_column: "event_timestamp"})
    joined = historical_features(feature_store(settings), settings.models.feature_service, picked, "event_id")
    scores = np.asarray(booster.inplace_predict(feature_matrix(joined, feature_names)), dtype=np.float64)
    observe = settings.observability
    return build_baseline(joined, feature_names, scores, bins=observe.drift_bins, seed=seed)


def baseline_files(baseline: DriftBaseline) -> dict[str, bytes]:
    """The extra file the registry seals into the model version."""
    return {BASELINE_FILE: baseline.to_json().encode()}
