"""Features of a transaction at request time: the online values folded with the transaction itself.

The stream computes, for an event at t, each window over the entity's events in (t - W, t], the event
included. Online, Feast holds only each entity's *aggregates* as of its latest event t0 <= t, not the events,
so the request's values are rebuilt per aggregation, and each says how (its *basis*):

- ``exact``: what the stream will compute for this event, given the store is up to date with the entity's
  events: every window of an entity the store has never seen (the event is its first: count 1, sum/max/mean the
  amount, 1 distinct value, no previous event); every window of W <= t - t0 (all stored events have left it);
  and the seconds since the previous event, t - t0.
- ``folded``: stored value + the event (count + 1, sum + amount, max of both; a mean through the count over the
  same window). Equal to the stream's value unless some of the entity's events in (t0 - W, t - W] have left the
  window since t0; otherwise it over-counts them (an upper bound for counts and sums). Aggregates cannot
  subtract events they no longer know.
- ``stored``: the stored value unchanged, as of t0, without the event: a distinct count (whether the
  event's value is new cannot be told from a count), a mean without a count over its window, and every feature
  when the request is older than the stored event (t < t0: the store is already ahead of it).

Feast keeps t0 in whole seconds (truncated), so t - t0 may be up to one second longer than the stream's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pipelines.transforms.windows import EntityFeatureSet, WindowAggregate

Basis = Literal["exact", "folded", "stored"]


@dataclass(frozen=True)
class RequestFeatures:
    values: dict[str, float | int | None]
    basis: dict[str, Basis]


def features_at_request(
    features: EntityFeatureSet,
    stored: Mapping[str, Any] | None,
    stored_event_time: datetime | None,
    event: Mapping[str, Any],
    event_time: datetime,
) -> RequestFeatures:
    """One entity's features for ``event`` at ``event_time`` (see the module docstring for the rules).

    ``stored`` is None for an entity the online store does not know; ``event`` holds the columns the
    aggregates read (``amount``, ``merchant_id``, ...).
    """
    values: dict[str, float | int | None] = {}
    basis: dict[str, Basis] = {}
    if stored is None or stored_event_time is None:
        for aggregate in features.aggregates:
            values[aggregate.name] = _first_event_value(aggregate, event)
            basis[aggregate.name] = "exact"
        return RequestFeatures(values, basis)

    gap_ms = (event_time - stored_event_time).total_seconds() * 1000
    for aggregate in features.aggregates:
        name = aggregate.name
        if gap_ms < 0:
            values[name], basis[name] = stored.get(name), "stored"
        elif aggregate.aggregation == "seconds_since_prev":
            values[name], basis[name] = gap_ms / 1000, "exact"
        elif gap_ms >= aggregate.window_ms:
            values[name], basis[name] = _first_event_value(aggregate, event), "exact"
        else:
            values[name], basis[name] = _folded(aggregate, features, stored, event)
    return RequestFeatures(values, basis)


def _first_event_value(aggregate: WindowAggregate, event: Mapping[str, Any]) -> float | int | None:
    """The aggregate over a window holding only the event itself."""
    if aggregate.aggregation in ("count", "count_distinct"):
        return 1
    if aggregate.aggregation == "seconds_since_prev":
        return None
    assert aggregate.column is not None
    return float(event[aggregate.column])


def _folded(
    aggregate: WindowAggregate, features: EntityFeatureSet, stored: Mapping[str, Any], event: Mapping[str, Any]
) -> tuple[float | int | None, Basis]:
    current = stored.get(aggregate.name)
    if current is None:  # a stored null leaves nothing to fold into
        return None, "stored"
    if aggregate.aggregation == "count":
        return int(current) + 1, "folded"
    if aggregate.aggregation == "count_distinct":
        return current, "stored"
    assert aggregate.column is not None
    amount = float(event[aggregate.column])
    if aggregate.aggregation == "sum":
        return float(current) + amount, "folded"
    if aggregate.aggregation == "max":
        return max(float(current), amount), "folded"
    # mean: needs the number of events it averages, i.e. a stored count over the same window
    count = _count_over(features, aggregate, stored)
    if count is None:
        return current, "stored"
    return (float(current) * count + amount) / (count + 1), "folded"


def _count_over(features: EntityFeatureSet, mean: WindowAggregate, stored: Mapping[str, Any]) -> int | None:
    for aggregate in features.aggregates:
        if aggregate.aggregation == "count" and aggregate.window == mean.window:
            value = stored.get(aggregate.name)
            return int(value) if value is not None else None
    return None
