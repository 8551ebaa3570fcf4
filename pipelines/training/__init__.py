"""Training: labels from Kafka, point-in-time features from Feast, an XGBoost model, a registered version.

Modules, in the order a run uses them: ``labels`` (bounded Kafka read, label cut-off), ``dataset`` (events,
Feast's point-in-time join, time split, fingerprint), ``train`` (XGBoost, early stopping, progress),
``metrics`` (numpy ROC-AUC, PR-AUC, precision/recall, calibration), ``run`` (the whole run, for CLI and job).
"""

from __future__ import annotations

from pipelines.training.errors import (
    InsufficientTrainingDataError,
    LabelReadError,
    TrainingDataError,
    TrainingError,
)

__all__ = ["InsufficientTrainingDataError", "LabelReadError", "TrainingDataError", "TrainingError"]
