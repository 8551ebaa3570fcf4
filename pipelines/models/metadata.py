"""What a registered model version says about itself: ``metadata.json`` next to the model file.

Everything needed to trust and to serve a version without re-running anything: the exact ordered feature list
and the Feast feature service it came from (the scorer must feed columns in that order), the data it was trained
on (event-time window, label cut-off, row counts, a fingerprint of the training frame), the metrics, the alert
threshold, and the model file's checksum. Frozen pydantic models, so a version's record cannot be changed in
memory either, and a file that does not parse back is reported instead of half-read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

METADATA_FORMAT_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CalibrationBin(_Record):
    """One score bin: how many events fell in it, their mean score and how often they really were positive."""

    lower: float
    upper: float
    count: int
    mean_predicted: float | None = Field(description="Null for an empty bin.")
    observed_rate: float | None = Field(description="Null for an empty bin.")


class EvaluationMetrics(_Record):
    """A model's quality on one labelled set (scores vs labels)."""

    rows: int
    positives: int
    negative_weight: float = Field(
        default=1.0,
        description="How many traffic negatives each labelled negative stood for (1 / the genuine label fraction); "
        "precision, PR-AUC, Brier and the calibration's rates count each negative that many times.",
    )
    roc_auc: float | None = Field(description="Null when the set holds one class only.")
    pr_auc: float | None = Field(description="Average precision (step-wise area under precision-recall).")
    threshold: float
    alerts: int = Field(description="Events scored at or above the threshold.")
    precision: float | None = Field(description="Null when nothing alerts.")
    recall: float | None = Field(description="Null when the set has no positives.")
    brier: float | None = Field(description="Mean squared error of the scores as probabilities; null if empty.")
    calibration: tuple[CalibrationBin, ...]


class RowCounts(_Record):
    train: int
    validation: int
    train_positives: int
    validation_positives: int
    test: int = 0
    test_positives: int = 0


class TrainingSummary(_Record):
    """What training knows about the model it hands to the registry."""

    feature_names: tuple[str, ...] = Field(description="The model's input columns, in the order it expects them.")
    feature_service: str
    label_column: str
    training_window_start: datetime = Field(description="Earliest event time of any training, validation or test row.")
    training_window_end: datetime = Field(description="Latest event time of any training, validation or test row.")
    validation_start: datetime = Field(description="Rows at or after this event time validate; earlier ones train.")
    test_start: datetime | None = Field(
        default=None, description="Rows at or after this event time test (no choice is made on them); null: no test."
    )
    label_cutoff: datetime = Field(description="Only labels known by then (label_time <= cut-off) were used.")
    rows: RowCounts
    data_fingerprint: str = Field(description="sha256 of the training frame: event ids, split, labels, features.")
    alert_threshold: float
    threshold_policy: Literal["fixed", "best_f1"] = Field(
        default="fixed", description="fixed: the configured threshold; best_f1: chosen on the validation split."
    )
    best_iteration: int = Field(description="Boosting rounds kept (early stopping on the validation set), minus one.")
    params: dict[str, Any]
    train_metrics: EvaluationMetrics
    validation_metrics: EvaluationMetrics
    test_metrics: EvaluationMetrics | None = Field(
        default=None,
        description="At the version's threshold, on the latest rows, which neither early stopping nor the threshold "
        "saw: the estimate to judge a version by. Null without a test split (and in versions older than it).",
    )


class ModelMetadata(_Record):
    """``metadata.json`` of one registered version: identity and integrity (from the registry) + training."""

    format_version: int = METADATA_FORMAT_VERSION
    model_name: str
    version: int
    created_at: datetime
    xgboost_version: str
    model_file: str
    model_sha256: str
    training: TrainingSummary
