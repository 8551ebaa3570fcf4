"""What the observability package raises on purpose; every error is a :class:`FeaturestreamError`."""

from __future__ import annotations

from pipelines.errors import FeaturestreamError


class ObservabilityError(FeaturestreamError):
    """Root of the errors raised by metrics, drift, quality, alerts, run logs and reports."""


class BaselineError(ObservabilityError):
    """A drift baseline cannot be built, read, or does not cover what it is asked about."""


class RunLogError(ObservabilityError):
    """A run log is missing or a line of it does not parse."""


class MetricsEndpointError(ObservabilityError):
    """No metrics endpoint answers where one was expected (nothing is running, or it is elsewhere)."""
