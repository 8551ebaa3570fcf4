"""The root exception of feature lookups and the mistakes a caller can make: each message names what exists."""

from __future__ import annotations

from pipelines.errors import FeaturestreamError


class FeatureLookupError(FeaturestreamError):
    """Root of every error raised on purpose by :mod:`pipelines.lookups`."""


class UnknownEntityTypeError(FeatureLookupError):
    """The entity type is not registered in Feast (the message lists the entities that are)."""


class UnknownFeatureError(FeatureLookupError):
    """A requested feature is not a feature of the entity (the message lists the entity's features)."""


class UnknownFeatureServiceError(FeatureLookupError):
    """The feature service is not registered, or has no feature of the entity (the message says which exist)."""


class AmbiguousFeatureSelectionError(FeatureLookupError):
    """Both a feature service and explicit features were given: a lookup reads one or the other."""
