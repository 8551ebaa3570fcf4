"""The production model for request-time scoring: the stream's own model source and scorer, reused.

:class:`~pipelines.scoring.model_source.ModelSource` reads the registry's production alias, checks the file's
checksum and refuses a model needing features the domain does not compute;
:func:`~pipelines.scoring.scorer.score_matrix` scores rows in the model's feature order (nulls as NaN) with the
booster cached per version. The endpoint therefore scores exactly as the stream does. The alias is re-read by
the app's background refresh, not per request: a promotion or rollback takes effect within
``serving.registry_refresh_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from pipelines.config import Settings
from pipelines.domains.base import Domain
from pipelines.errors import FeaturestreamError
from pipelines.models.registry import ModelRegistry
from pipelines.scoring.model_source import ModelSource, ScoringModel
from pipelines.scoring.scorer import booster_for, score_matrix

log = logging.getLogger(__name__)


class ProductionModel:
    """The model in use and what went wrong loading one (reported by /health and the 503s)."""

    def __init__(self, settings: Settings, domain: Domain) -> None:
        self.settings = settings
        self._source = ModelSource(settings, domain)
        self._lock = threading.Lock()
        self.problem: str | None = None
        self._services: dict[int, str] = {}

    @property
    def current(self) -> ScoringModel | None:
        return self._source.current

    def feature_service(self, model: ScoringModel) -> str:
        """The Feast feature service the model was trained on."""
        return self._services.get(model.version, self.settings.models.feature_service)

    def refresh(self) -> ScoringModel | None:
        """Follow the production alias (a rollout or rollback); keep the current model if the new one is refused."""
        with self._lock:
            try:
                model = self._source.for_batch()
            except FeaturestreamError as exc:
                log.error("cannot load the production model: %s", exc)
                self.problem = str(exc)
                return self._source.current
            if model is None:
                self.problem = (
                    f"no production model in {ModelRegistry.from_settings(self.settings)}: train and promote one "
                    "(`featurestream train --promote`, or `featurestream models promote VERSION`)"
                )
                return None
            if model.version not in self._services:
                registry = ModelRegistry.from_settings(self.settings)
                self._services[model.version] = registry.version(model.version).metadata.training.feature_service
            booster_for(model)  # loaded now (one predict thread, see booster_for), not on the first request
            self.problem = None
            return model

    def score(self, model: ScoringModel, features: Mapping[str, Any]) -> float:
        """One row's score, through the stream's scorer."""
        table = pa.table({name: pa.array([features[name]], pa.float64()) for name in model.feature_names})
        return float(score_matrix(model, table)[0])
