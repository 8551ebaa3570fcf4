"""A checkpoint keeps the state bucket count and layout it was started with; another is refused before any batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from pipelines.config import Settings
from pipelines.errors import ConfigurationError
from pipelines.spark.session import checkpoint_dir
from pipelines.streaming.checkpoint_layout import LAYOUT_FILE, STATE_LAYOUT, check_state_layout
from pipelines.streaming.job import JOB_NAME, start_feature_stream


def test_a_new_checkpoint_records_the_count_and_a_restart_with_it_passes(tmp_path: Path) -> None:
    checkpoint = tmp_path / "stream" / "features"
    check_state_layout(checkpoint, 16)
    assert json.loads((checkpoint / LAYOUT_FILE).read_text()) == {"state_buckets": 16, "state_layout": STATE_LAYOUT}
    check_state_layout(checkpoint, 16)


def test_a_restart_with_another_count_is_refused_naming_both(tmp_path: Path) -> None:
    check_state_layout(tmp_path, 16)
    with pytest.raises(ConfigurationError, match=r"state_buckets=16, this start has 64.*back to 16"):
        check_state_layout(tmp_path, 64)
    assert json.loads((tmp_path / LAYOUT_FILE).read_text())["state_buckets"] == 16  # the record stays


def test_a_used_checkpoint_without_a_record_is_refused_as_the_older_layout(tmp_path: Path) -> None:
    (tmp_path / "offsets").mkdir()  # Spark has planned batches here, for a featurestream that wrote no record
    with pytest.raises(ConfigurationError, match=r"'one value per bucket'.*new checkpoint"):
        check_state_layout(tmp_path, 16)
    assert not (tmp_path / LAYOUT_FILE).exists()


def test_a_record_without_the_chunked_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text(json.dumps({"state_buckets": 16}))  # written before the layout was recorded
    with pytest.raises(ConfigurationError, match=r"cannot read it.*another stream\.query_name"):
        check_state_layout(tmp_path, 16)


def test_the_stream_job_refuses_a_changed_count_before_touching_kafka(tmp_path: Path) -> None:
    settings = Settings(stack={"state_dir": tmp_path, "broker_port": 1})  # type: ignore[arg-type]  # no broker
    check_state_layout(checkpoint_dir(settings, JOB_NAME, settings.stream.query_name), 64)
    with pytest.raises(ConfigurationError, match="state_buckets=64"):
        start_feature_stream(cast(Any, None), settings)
