"""The root exception of training and the ways building a training set or a model can fail."""

from __future__ import annotations

from pipelines.errors import FeaturestreamError


class TrainingError(FeaturestreamError):
    """Root of every error raised on purpose by :mod:`pipelines.training`."""


class LabelReadError(TrainingError):
    """The labels topic could not be read to its end (missing topic, broker error, timeout)."""


class TrainingDataError(TrainingError):
    """The training data is missing, inconsistent, or lost rows on the way (e.g. in Feast's join)."""


class InsufficientTrainingDataError(TrainingDataError):
    """Too few labelled events, or a split without both classes: no model worth registering can come of it."""
