"""Which model scores a micro-batch: the registry's production alias, read on the driver at each batch.

Reading the alias at every batch boundary is what makes a promotion (or rollback) take effect without a
restart; each score then names the version that produced it. A model that needs a feature the stream does
not compute is refused with a clear error instead of scoring NaNs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from pipelines.config import Settings
from pipelines.domains.base import Domain
from pipelines.errors import ConfigurationError
from pipelines.models.errors import ModelRegistryError
from pipelines.models.registry import CHALLENGER, PRODUCTION, ModelRegistry, ModelVersion

log = logging.getLogger(__name__)


class MissingModelFeaturesError(ConfigurationError):
    """The model asks for features the streaming job does not compute."""


@dataclass(frozen=True)
class ScoringModel:
    """What executors need to score: the model's bytes (shipped with the task, so executors need no access to
    the registry's filesystem; loaded once per worker process), the feature order and the threshold."""

    name: str
    version: int
    model_bytes: bytes = field(repr=False)
    feature_names: tuple[str, ...]
    threshold: float
    digest: str = field(init=False, repr=False)
    """sha256 of the model bytes: what identifies the booster (two registries may both have a ``fraud_xgb`` v1)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.model_bytes).hexdigest())


def check_features(model: ScoringModel, domain: Domain) -> None:
    missing = [name for name in model.feature_names if name not in domain.feature_names]
    if missing:
        raise MissingModelFeaturesError(
            f"model {model.name} v{model.version} needs features the stream does not compute: {missing}; "
            f"it computes: {domain.feature_names}"
        )


class ModelSource:
    """Remembers the model in use; switches at batch boundaries when its alias moves.

    ``alias`` is the registry's ``production`` alias (the scores users act on) or ``challenger`` (the shadow
    model, whose scores go to their own topic for comparison; clearing the alias stops shadow scoring).
    """

    def __init__(self, settings: Settings, domain: Domain, alias: str = PRODUCTION) -> None:
        if alias not in (PRODUCTION, CHALLENGER):
            raise ValueError(f"alias must be {PRODUCTION!r} or {CHALLENGER!r}, got {alias!r}")
        self.settings = settings
        self.domain = domain
        self.alias = alias
        self.current: ScoringModel | None = None
        self._said_not_scoring = False

    def for_batch(self) -> ScoringModel | None:
        """The alias's model now, or None (said once in the log) when nothing is promoted."""
        registry = ModelRegistry.from_settings(self.settings)
        try:
            aliased = self._aliased(registry)
        except ModelRegistryError:
            aliased = None
        if aliased is None and self.alias == CHALLENGER:
            if self.current is not None:
                log.warning("challenger alias cleared: shadow scoring stops from this batch on")
            self.current = None
            return None
        if aliased is None:
            if not self._said_not_scoring:
                log.warning("no aliased model in %s: building features but NOT scoring until one is promoted", registry)
                self._said_not_scoring = True
            return self.current
        if self.current is not None and self.current.version == aliased.version:
            return self.current
        data = aliased.model_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != aliased.metadata.model_sha256:
            raise ConfigurationError(f"{aliased.model_path} differs from the registered model: refusing it")
        candidate = ScoringModel(
            name=aliased.model_name,
            version=aliased.version,
            model_bytes=data,
            feature_names=tuple(aliased.feature_names),
            threshold=aliased.metadata.training.alert_threshold,
        )
        try:
            check_features(candidate, self.domain)
        except MissingModelFeaturesError:
            if self.current is None:
                raise
            log.exception(
                "not rolling out %s v%s; still scoring with v%s",
                candidate.name,
                candidate.version,
                self.current.version,
            )
            return self.current
        log.warning("%s scoring with %s v%s from this batch on", self.alias, candidate.name, candidate.version)
        self.current = candidate
        return candidate

    def _aliased(self, registry: ModelRegistry) -> ModelVersion | None:
        return registry.production() if self.alias == PRODUCTION else registry.challenger()
