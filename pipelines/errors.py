"""The one root exception of the package, and the failures every module shares.

Callers catch :class:`FeaturestreamError` to handle anything this library raises on purpose; the CLI turns
it into a one-line message and a non-zero exit instead of a traceback.
"""

from __future__ import annotations


class FeaturestreamError(Exception):
    """Root of every error raised deliberately by featurestream."""


class ConfigurationError(FeaturestreamError):
    """A setting is missing, contradictory or points at something that does not exist."""


class ArtifactsMissingError(ConfigurationError):
    """Pinned JVM artifacts (broker or Spark connector jars) have not been fetched yet."""
