"""`featurestream train` as a library call: labels -> training set -> model -> registry (-> production).

Plain Python, no Spark: the labelled set is small (labels are a sample of the traffic), and Feast's file
offline store does the point-in-time join in-process. ``jobs/train.py`` and the CLI both call
:func:`run_training`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.config import Settings
from pipelines.models.registry import ModelRegistry, ModelVersion
from pipelines.training.baseline import baseline_files, traffic_baseline
from pipelines.training.dataset import TrainingSet, build_training_set
from pipelines.training.errors import TrainingError
from pipelines.training.labels import LabelRead, read_labels
from pipelines.training.train import ProgressFunction, TrainedModel, train_model

StageFunction = Callable[[str], None]


@dataclass(frozen=True)
class TrainingRun:
    """What one training run read, built, trained and registered."""

    labels: LabelRead
    training_set: TrainingSet
    model: TrainedModel
    version: ModelVersion
    promoted: bool


def parse_cutoff(text: str) -> datetime:
    """An ISO 8601 date or date-time (``2026-11-20``, ``2026-11-20T08:00:00Z``); naive means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TrainingError(f"cannot read label cut-off {text!r}: use ISO 8601, like 2026-11-20T08:00:00Z") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_training(
    settings: Settings,
    *,
    label_cutoff: datetime | None = None,
    promote: bool = False,
    labels: LabelRead | None = None,
    progress: ProgressFunction | None = None,
    stage: StageFunction | None = None,
) -> TrainingRun:
    """Train on the labels known at ``label_cutoff`` (default: now) and register the model as a new version.

    ``labels`` skips the Kafka read (labels already in hand, e.g. from a test); ``promote`` makes the new
    version production right away, otherwise `featurestream models promote` does it after a look at the metrics.
    """
    say = stage or (lambda _: None)
    cutoff = label_cutoff or datetime.now(UTC)
    if cutoff.tzinfo is None:
        raise TrainingError("the label cut-off must be timezone-aware")
    if labels is None:
        say(f"reading labels from {settings.kafka.topics.labels}")
        labels = read_labels(settings)
    say(f"joining {len(labels.frame):,} labels to point-in-time features ({settings.models.feature_service})")
    training_set = build_training_set(settings, labels.frame, cutoff)
    say(
        f"training on {len(training_set.train):,} events, validating on {len(training_set.validation):,}, "
        f"testing on {len(training_set.test):,}"
    )
    model = train_model(training_set, settings.models, progress=progress)
    say("building the drift baseline: point-in-time features and scores of a sample of the window's traffic")
    baseline = traffic_baseline(settings, model.booster, model.summary.feature_names, training_set.window)
    registry = ModelRegistry.from_settings(settings)
    version = registry.register(model.booster, model.summary, extra_files=baseline_files(baseline))
    if promote:
        registry.promote(version.version)
    return TrainingRun(labels=labels, training_set=training_set, model=model, version=version, promoted=promote)
