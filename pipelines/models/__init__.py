"""Trained models: a versioned registry with immutable versions and an atomically switched production alias."""

from __future__ import annotations

from pipelines.models.errors import (
    EmptyRegistryError,
    ModelIntegrityError,
    ModelRegistryError,
    NoProductionModelError,
    NothingToRollBackError,
    UnknownModelVersionError,
)
from pipelines.models.metadata import (
    CalibrationBin,
    EvaluationMetrics,
    ModelMetadata,
    RowCounts,
    TrainingSummary,
)
from pipelines.models.registry import ModelRegistry, ModelVersion, registry_root

__all__ = [
    "CalibrationBin",
    "EmptyRegistryError",
    "EvaluationMetrics",
    "ModelIntegrityError",
    "ModelMetadata",
    "ModelRegistry",
    "ModelRegistryError",
    "ModelVersion",
    "NoProductionModelError",
    "NothingToRollBackError",
    "RowCounts",
    "TrainingSummary",
    "UnknownModelVersionError",
    "registry_root",
]
