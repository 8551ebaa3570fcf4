"""The root exception of the Feast I/O package and the failures its writers and repository loader report."""

from __future__ import annotations

from pipelines.errors import FeaturestreamError


class FeastIOError(FeaturestreamError):
    """Root of every error raised on purpose by :mod:`pipelines.feast_io`."""


class FeatureRepoError(FeastIOError):
    """The Feast repository (features/) cannot be loaded or applied."""


class UnknownFeatureViewError(FeastIOError):
    """A writer was asked to write a feature view that the applied registry does not contain."""


class FeatureRowsError(FeastIOError):
    """Rows handed to a writer lack a column or hold a null join key or event time."""


class UnsupportedFeatureTypeError(FeastIOError):
    """A feature's Feast type has no fast encoder; write that view through the Feast SDK writer instead."""


class OnlineStoreNotReadyError(FeastIOError):
    """The online store has no table for a feature view: `featurestream features apply` has not run."""
