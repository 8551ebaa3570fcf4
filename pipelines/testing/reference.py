"""A brute-force computation of the windowed features, written independently of pipelines.transforms.

Tests compare the stream (and Feast's point-in-time join) with it. It scans, for every event, all events of
the same entity: slow, obviously correct, and sharing no code with the vectorised implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines.transforms.windows import EntityFeatureSet


def reference_features(events: pd.DataFrame, features: EntityFeatureSet) -> pd.DataFrame:
    """Features for each row of ``events`` (index kept), per entity of ``features.key_column``.

    ``events`` is in arrival order and holds ``event_time_ms``. For an event at t the window is the entity's
    events with time in (t - W, t] that are known: earlier in time, or equal in time and arrived no later.
    """
    out = pd.DataFrame(index=events.index, columns=features.feature_names, dtype=float)
    for _, group in events.groupby(features.key_column, sort=False):
        times = group["event_time_ms"].to_numpy()
        arrival = np.arange(len(group))
        for i, index in enumerate(group.index):
            t = times[i]
            known = (times < t) | ((times == t) & (arrival <= i))
            for aggregate in features.aggregates:
                if aggregate.aggregation == "seconds_since_prev":
                    previous = times[known & (arrival != i)]
                    out.loc[index, aggregate.name] = (t - previous.max()) / 1000 if len(previous) else math.nan
                    continue
                window = group[known & (times > t - aggregate.window_ms)]
                if aggregate.aggregation == "count":
                    value = float(len(window))
                elif aggregate.aggregation == "count_distinct":
                    value = float(window[aggregate.column].nunique())
                else:
                    value = float(getattr(window[aggregate.column], aggregate.aggregation)())
                out.loc[index, aggregate.name] = value
    return out


MINUTE_MS = 60_000


def card_events(rows: list[tuple[str, int, float, str]]) -> pd.DataFrame:
    """Rows (card id, minute, amount, merchant id), in arrival order, as the frame the card features read."""
    return pd.DataFrame(
        {
            "card_id": [r[0] for r in rows],
            "event_time_ms": np.array([r[1] for r in rows], dtype=np.int64) * MINUTE_MS,
            "amount": [r[2] for r in rows],
            "merchant_id": [r[3] for r in rows],
        }
    )
