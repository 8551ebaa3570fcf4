"""The root exception of the model registry and the ways asking it for something can fail."""

from __future__ import annotations

from pipelines.errors import FeaturestreamError


class ModelRegistryError(FeaturestreamError):
    """Root of every error raised on purpose by :mod:`pipelines.models`."""


class EmptyRegistryError(ModelRegistryError):
    """The registry holds no version of the model yet."""


class UnknownModelVersionError(ModelRegistryError):
    """A version number that was never registered (or a folder that is not a complete version)."""


class NoProductionModelError(ModelRegistryError):
    """Nothing has been promoted to production."""


class NothingToRollBackError(ModelRegistryError):
    """Rollback asked for, but production has no earlier version to return to."""


class ModelIntegrityError(ModelRegistryError):
    """A stored version's files do not match what was registered (edited, truncated or corrupted)."""
