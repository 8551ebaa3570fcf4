"""Training end to end, then scoring in the stream.

Generated history with labels -> streaming features -> train -> registry -> production -> live scores.

30,000 generated transactions over 3 days, ending a week ago, and their labels go to Kafka; the streaming job
drains them into Feast's offline store; training reads the labels back from Kafka (read_committed, bounded),
joins point-in-time features, trains, registers and promotes. The bar (validation ROC-AUC above 0.9) is the
issue's: a model that cannot reach it means the features or the generator are wrong, not the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import xgboost as xgb
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from pipelines.cli.models_commands import train_command
from pipelines.config import Settings
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.generator.generator import GeneratorOptions, TransactionGenerator
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.models import ModelRegistry
from pipelines.produce.transactions import produce_transactions
from pipelines.serde.decoder import RecordDecoder
from pipelines.spark.submit import spark_submit_argv
from pipelines.testing import settings_environment, stream_settings
from pipelines.testing.kafka import read_topic
from pipelines.testing.models import register_synthetic_model
from pipelines.testing.streams import run_until_drained
from pipelines.training.dataset import service_columns
from pipelines.training.run import TrainingRun, run_training

COUNT = 30_000
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def trained(kafka: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = stream_settings(kafka, tmp_path_factory.mktemp("training"))
    ensure_topics(admin_client(settings), settings.kafka.topics.all(), partitions=3, replication_factor=1)
    apply_repo(settings)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - 10 * DAY
    options = GeneratorOptions(
        count=COUNT,
        now_ms=int(now.timestamp() * 1000),
        seed=7,
        cards=2_000,
        merchants=400,
        start_ms=int(start.timestamp() * 1000),
        duration_ms=int(3 * DAY.total_seconds() * 1000),
    )
    summary = produce_transactions(settings, options, labels=True)
    assert summary.ok and summary.labels is not None

    running = run_until_drained(spark, settings, timeout_s=900)
    assert sum(batch.valid for batch in running.writer.history) == COUNT

    # Labels up to 4 days after the last event: the slowest confirmations are not known yet.
    cutoff = start + 7 * DAY
    run = run_training(settings, label_cutoff=cutoff, promote=True)
    return {"settings": settings, "options": options, "summary": summary, "cutoff": cutoff, "run": run}


def test_the_model_separates_fraud_on_later_events(trained: dict[str, Any]) -> None:
    run: TrainingRun = trained["run"]
    validation = run.version.metadata.training.validation_metrics
    print(f"validation: {validation.model_dump(exclude={'calibration'})}")
    assert validation.roc_auc is not None and validation.roc_auc > 0.9
    assert validation.pr_auc is not None and validation.pr_auc > validation.positives / validation.rows
    assert validation.positives > 20 and validation.rows - validation.positives > 20
    # The latest events, on which nothing was chosen: the model's figures on them are not flattered.
    test = run.version.metadata.training.test_metrics
    assert test is not None
    print(f"test: {test.model_dump(exclude={'calibration'})}")
    assert test.positives > 20 and test.rows - test.positives > 20
    assert test.roc_auc is not None and test.roc_auc > 0.9
    assert test.threshold == validation.threshold


def test_every_label_known_at_the_cutoff_became_one_training_row(trained: dict[str, Any]) -> None:
    run: TrainingRun = trained["run"]
    cutoff_ms = int(trained["cutoff"].timestamp() * 1000)
    # The same labels, straight from the (deterministic) generator.
    generator = TransactionGenerator(trained["options"])
    produced = [label for chunk in generator.chunks() for label in chunk.labels.records()]
    known = {label["event_id"] for label in produced if label["label_time"] <= cutoff_ms}
    assert run.labels.records_read == len(produced) == trained["summary"].labels.sent
    assert run.labels.undecodable == 0
    stats = run.training_set.stats
    assert stats.after_cutoff == sum(label["label_time"] > cutoff_ms for label in produced) > 0
    assert stats.without_event == 0 and stats.label_before_event == 0
    assert set(run.training_set.frame["event_id"]) == known and stats.rows == len(known)
    window_start, window_end = run.training_set.window
    test_start = run.training_set.test_start
    assert test_start is not None
    assert window_start < run.training_set.validation_start < test_start <= window_end < trained["cutoff"]


def test_the_registered_version_is_production_and_complete(trained: dict[str, Any]) -> None:
    run: TrainingRun = trained["run"]
    settings: Settings = trained["settings"]
    registry = ModelRegistry.from_settings(settings)
    production = registry.production()
    assert production is not None and production.version == run.version.version == 1
    metadata = production.metadata
    store = feature_store(settings)
    assert metadata.training.feature_names == service_columns(store, "fraud_model_v1").feature_names
    assert len(metadata.training.feature_names) == 11
    assert metadata.training.feature_service == "fraud_model_v1"
    assert metadata.training.label_cutoff == trained["cutoff"]
    rows = metadata.training.rows
    assert rows.train + rows.validation + rows.test == run.training_set.stats.rows
    assert rows.test == len(run.training_set.test) > 0
    assert metadata.training.training_window_start < metadata.training.validation_start
    assert metadata.xgboost_version == xgb.__version__

    booster = registry.load_booster(production)
    frame = run.training_set.validation
    matrix = xgb.DMatrix(
        frame[list(metadata.training.feature_names)].to_numpy(dtype=float),
        feature_names=list(metadata.training.feature_names),
    )
    np.testing.assert_array_equal(booster.predict(matrix), run.model.booster.predict(matrix))


def test_training_again_through_the_cli_sees_the_same_data(trained: dict[str, Any]) -> None:
    settings: Settings = trained["settings"]
    cli = typer.Typer()
    cli.callback()(lambda: None)
    cli.command("train")(train_command)
    env = {
        "FEATURESTREAM_STACK__STATE_DIR": str(settings.stack.state_dir),
        "FEATURESTREAM_STACK__BROKER_PORT": str(settings.stack.broker_port),
        "FEATURESTREAM_STACK__CONTROLLER_PORT": str(settings.stack.controller_port),
        "FEATURESTREAM_KAFKA__TOPICS__LABELS": settings.kafka.topics.labels,
        # The generator labels 2% of genuine payments; this version weighs them so and picks its own threshold.
        "FEATURESTREAM_MODELS__GENUINE_LABEL_FRACTION": "0.02",
        "FEATURESTREAM_MODELS__THRESHOLD_POLICY": "best_f1",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(cli, ["train", "--label-cutoff", trained["cutoff"].isoformat()], env=env)
    assert result.exit_code == 0, result.output
    print(result.output)
    assert "ROC-AUC" in result.output and "registered fraud_xgb v2" in result.output
    assert "(best F1 on" in result.output and "labelled at 2.0%" in result.output  # the title may wrap

    registry = ModelRegistry.from_settings(settings)
    first, second = registry.version(1), registry.version(2)
    assert second.metadata.training.data_fingerprint == first.metadata.training.data_fingerprint
    assert first.metadata.training.threshold_policy == "fixed" and first.metadata.training.alert_threshold == 0.5
    chosen = second.metadata.training
    assert chosen.threshold_policy == "best_f1" and chosen.validation_metrics.negative_weight == 50
    assert chosen.validation_metrics.threshold == chosen.alert_threshold != 0.5
    assert registry.production().version == 1  # type: ignore[union-attr]  # not promoted without --promote
    registry.promote(2)
    assert registry.rollback().version == 1


@pytest.fixture(autouse=True)
def _no_stray_settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI reads settings from the environment only: run where no featurestream.toml can be picked up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEATURESTREAM_CONFIG", raising=False)


# -- scoring in the stream, with the model trained above in production ------------------------------------------
# Live events are scored; scores reach read_committed consumers exactly once, also when Spark replays a batch
# whose scores were already published (a crash between the Kafka commit and Spark's own, reproduced by removing
# the batch from the checkpoint's commit log).

LIVE = 3_000


def _scores(settings: Any, topic: str | None = None) -> list[dict[str, Any]]:
    decoder = RecordDecoder("scores")
    topic = topic or settings.kafka.topics.scores
    return [decoder.decode(message.value()) for message in read_topic(settings, topic)]


def _run_stream(spark: SparkSession, settings: Any) -> list[Any]:
    return run_until_drained(spark, settings).writer.history


def test_live_events_are_scored_exactly_once_even_when_a_batch_is_replayed(
    trained: dict[str, Any], spark: SparkSession
) -> None:
    settings = trained["settings"]
    now = datetime.now(UTC)
    live = GeneratorOptions(
        count=LIVE,
        now_ms=int(now.timestamp() * 1000),
        seed=99,
        cards=2_000,
        merchants=400,
        start_ms=int((now - timedelta(hours=1)).timestamp() * 1000),
        duration_ms=3_600_000,
        bad_fraction=0.02,
    )
    produce_transactions(settings, live, labels=False)
    registry = ModelRegistry.from_settings(settings)
    challenger = register_synthetic_model(settings, promote=False, seed=7).version
    registry.set_challenger(challenger)
    history = _run_stream(spark, settings)
    valid = sum(batch.valid for batch in history)
    assert valid > 0.95 * LIVE
    production = ModelRegistry.from_settings(settings).production()
    assert production is not None
    assert {batch.model_version for batch in history if batch.valid} == {production.version}

    scores = _scores(settings)
    assert len(scores) == valid
    assert len({score["event_id"] for score in scores}) == valid
    assert {score["model_version"] for score in scores} == {str(production.version)}
    assert all(0.0 <= score["score"] <= 1.0 for score in scores)
    assert all(score["features_as_of"] == score["event_time"] for score in scores)
    # The challenger scored the same events, in shadow, on its own topic.
    shadow = _scores(settings, settings.kafka.topics.shadow_scores)
    assert sorted(score["event_id"] for score in shadow) == sorted(score["event_id"] for score in scores)
    assert {score["model_version"] for score in shadow} == {str(challenger)}
    assert sum(batch.shadow_scored for batch in history) == valid

    # Crash after the Kafka transactions committed but before Spark recorded the batch: Spark replays it.
    commits = Path(settings.checkpoint_root) / "stream" / settings.stream.query_name / "commits"
    last = max((p for p in commits.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    last.unlink()
    (commits / f".{last.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum file of the same entry
    replayed = _run_stream(spark, settings)
    assert [batch.batch_id for batch in replayed] == [int(last.name)]
    assert replayed[0].scored == 0 and replayed[0].dead_letters_published == 0  # markers say: delivered
    assert len(_scores(settings)) == valid
    assert replayed[0].shadow_scored == 0
    assert len(_scores(settings, settings.kafka.topics.shadow_scores)) == valid
    registry.set_challenger(None)


def test_scores_stay_exactly_once_when_the_job_is_killed_mid_run(trained: dict[str, Any]) -> None:
    """SIGKILL the spark-submit'ed job (driver and Python workers) while it works through a backlog in small
    batches, restart it on the same checkpoint, and count: one score per valid event, none twice."""
    settings = trained["settings"]
    before = {score["event_id"] for score in _scores(settings)}
    now = datetime.now(UTC)
    backlog = GeneratorOptions(
        count=12_000,
        now_ms=int(now.timestamp() * 1000),
        seed=123,
        cards=2_000,
        merchants=400,
        # After the live events above, so none is older than the watermark they left behind.
        start_ms=int((now + timedelta(minutes=1)).timestamp() * 1000),
        duration_ms=30 * 60_000,
        bad_fraction=0.01,
    )
    produced = produce_transactions(settings, backlog, labels=False)
    expected_new = produced.main.sent - sum(produced.bad_by_kind.values())
    env = {
        **os.environ,
        **settings_environment(settings),
        "FEATURESTREAM_STREAM__MAX_OFFSETS_PER_TRIGGER": "1500",
        "FEATURESTREAM_STREAM__TRIGGER_INTERVAL": "500 milliseconds",
    }
    batch_log = Path(settings.stack.state_dir) / "runs" / settings.stream.query_name / "batches.jsonl"
    lines_before = len(batch_log.read_text().splitlines())
    job_log = Path(settings.stack.state_dir) / "killed-job.log"
    job = subprocess.Popen(
        spark_submit_argv(settings, "stream"),
        env=env,
        start_new_session=True,
        stdout=job_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300
        while len(batch_log.read_text().splitlines()) < lines_before + 2:
            assert job.poll() is None, f"the job exited before it was killed:\n{job_log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the job wrote no batches in time"
            time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
    partial = {score["event_id"] for score in _scores(settings)} - before
    assert 0 < len(partial) < expected_new  # killed mid-run

    restarted = subprocess.run(
        spark_submit_argv(settings, "stream", ["--available-now"]), env=env, capture_output=True, text=True
    )
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    scores = _scores(settings)
    new = [score["event_id"] for score in scores if score["event_id"] not in before]
    assert len(new) == expected_new
    assert len(set(new)) == len(new)
