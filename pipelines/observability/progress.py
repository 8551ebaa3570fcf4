"""Spark's query progress (``StreamingQueryProgress.json``) reduced to the numbers the metrics expose.

Pure: a dict (or its JSON text) in, a small frozen summary out, so it is tested with hand-written progress
documents and no JVM. Shapes follow Spark 4.0's ``StreamingQueryProgress.jsonValue``: ``sources[]`` carry
``startOffset`` / ``endOffset`` / ``latestOffset`` as JSON objects ``{topic: {partition: offset}}`` (pyspark's
``SourceProgress`` keeps them as JSON *strings*; both are accepted), ``stateOperators[]`` carry
``numRowsTotal`` and ``memoryUsedBytes``, ``eventTime.watermark`` is an ISO-8601 instant.

Consumer lag per partition is ``latestOffset - endOffset``: how far the source's newest offset (seen when the
batch was planned) is ahead of where the batch stopped. It is what ``maxOffsetsPerTrigger`` leaves for later;
it comes from the progress event and costs no extra call to the broker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PartitionLag:
    """How many records of one topic-partition the query had not read yet when its batch was planned."""

    topic: str
    partition: int
    end_offset: int
    latest_offset: int

    @property
    def lag(self) -> int:
        return max(0, self.latest_offset - self.end_offset)


@dataclass(frozen=True)
class StateOperatorSize:
    """One stateful operator's state store: rows and memory across its instances."""

    operator: str
    rows_total: int
    memory_bytes: int


@dataclass(frozen=True)
class ProgressSummary:
    """What one progress event says that the metrics need."""

    query_name: str | None
    batch_id: int
    num_input_rows: int
    input_rows_per_second: float | None
    processed_rows_per_second: float | None
    batch_duration_s: float | None
    lags: tuple[PartitionLag, ...]
    state: tuple[StateOperatorSize, ...]
    watermark_s: float | None
    """Event-time watermark as epoch seconds; None before the first watermark is known."""


def summarise_progress(progress: Mapping[str, Any] | str) -> ProgressSummary:
    """The metrics' view of one ``StreamingQueryProgress`` (its ``.json`` text or the parsed dict)."""
    doc: Mapping[str, Any] = json.loads(progress) if isinstance(progress, str) else progress
    lags: list[PartitionLag] = []
    for source in doc.get("sources") or []:
        lags.extend(partition_lags(source.get("endOffset"), source.get("latestOffset")))
    state = tuple(
        StateOperatorSize(
            operator=str(op.get("operatorName") or f"operator_{index}"),
            rows_total=int(op.get("numRowsTotal") or 0),
            memory_bytes=int(op.get("memoryUsedBytes") or 0),
        )
        for index, op in enumerate(doc.get("stateOperators") or [])
    )
    duration_ms = doc.get("batchDuration")
    return ProgressSummary(
        query_name=doc.get("name"),
        batch_id=int(doc.get("batchId", -1)),
        num_input_rows=int(doc.get("numInputRows") or 0),
        input_rows_per_second=_finite(doc.get("inputRowsPerSecond")),
        processed_rows_per_second=_finite(doc.get("processedRowsPerSecond")),
        batch_duration_s=None if duration_ms is None else float(duration_ms) / 1000.0,
        lags=tuple(sorted(lags, key=lambda lag: (lag.topic, lag.partition))),
        state=state,
        watermark_s=_instant_seconds((doc.get("eventTime") or {}).get("watermark")),
    )


def partition_lags(end_offset: object, latest_offset: object) -> list[PartitionLag]:
    """Lag of every topic-partition present in both offset documents (Kafka source shape)."""
    end, latest = _offsets(end_offset), _offsets(latest_offset)
    lags = []
    for topic, partitions in end.items():
        for partition, offset in partitions.items():
            newest = latest.get(topic, {}).get(partition)
            if newest is not None and offset >= 0 and newest >= 0:
                lags.append(PartitionLag(topic, partition, offset, newest))
    return lags


def _offsets(value: object) -> dict[str, dict[int, int]]:
    """``{topic: {partition: offset}}`` from a Kafka source offset (dict, JSON text, or nothing)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}  # not a Kafka source (e.g. a rate source's plain number)
    if not isinstance(value, Mapping):
        return {}
    result: dict[str, dict[int, int]] = {}
    for topic, partitions in value.items():
        if isinstance(partitions, Mapping):
            result[str(topic)] = {int(p): int(o) for p, o in partitions.items() if isinstance(o, int | float)}
    return result


def _finite(value: object) -> float | None:
    if not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _instant_seconds(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
