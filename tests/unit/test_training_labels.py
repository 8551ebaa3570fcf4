"""Labels as training sees them: decoded from Kafka values, then only what was known at the cut-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipelines.serde.encoder import make_encoder
from pipelines.testing import isolated_settings
from pipelines.training.labels import LABEL, LABEL_TIME, available_labels, decode_labels

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_labels_decode_and_bad_values_are_counted(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    encoder = make_encoder("labels", settings, "labels")
    records = [
        {"event_id": "e1", "card_id": "c1", "is_fraud": True, "label_time": millis(T0)},
        {"event_id": "e2", "card_id": "c2", "is_fraud": False, "label_time": millis(T0 + timedelta(hours=1))},
    ]
    values: list[bytes | None] = [*encoder.encode_many(records), b"garbage", None]
    read = decode_labels(settings, values, [(0, 0), (0, 1), (1, 0), (1, 1)])
    assert (read.records_read, read.undecodable) == (4, 2)
    assert read.frame["event_id"].tolist() == ["e1", "e2"]
    assert read.frame[LABEL].tolist() == [1, 0]
    assert read.frame[LABEL_TIME].tolist() == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=1))]
    assert read.frame[["_partition", "_offset"]].values.tolist() == [[0, 0], [0, 1]]


def test_the_latest_label_known_at_the_cutoff_wins() -> None:
    labels = pd.DataFrame(
        {
            "event_id": ["a", "a", "a", "b", "c"],
            LABEL: [0, 1, 0, 1, 1],
            LABEL_TIME: pd.to_datetime([T0, T0 + timedelta(hours=2), T0 + timedelta(days=3), T0, T0], utc=True),
            "_partition": [0, 0, 0, 1, 2],
            "_offset": [0, 1, 2, 0, 0],
        }
    )
    available = available_labels(labels, T0 + timedelta(days=1))
    by_event = available.frame.set_index("event_id")[LABEL].to_dict()
    assert by_event == {"a": 1, "b": 1, "c": 1}  # a's day-3 reversal is not known yet
    assert (available.after_cutoff, available.superseded) == (1, 1)

    # At the exact label time the label counts as known.
    assert len(available_labels(labels, T0).frame) == 3
    # Same label time: the one later in its partition wins.
    tied = labels.iloc[:2].assign(**{LABEL_TIME: pd.Timestamp(T0)})
    assert available_labels(tied, T0).frame[LABEL].tolist() == [1]


def test_a_naive_cutoff_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        available_labels(pd.DataFrame(columns=["event_id", LABEL, LABEL_TIME]), datetime(2026, 1, 1))
