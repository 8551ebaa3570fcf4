"""The request-time scoring endpoint: POST /score (and GET /health), a FastAPI app over Feast and the registry.

For a transaction it looks up the card's and the merchant's online features in one Feast read, rebuilds the
features the stream would compute for this event (:mod:`pipelines.serving.request_features`), scores them with
the production model exactly as the stream does (:mod:`pipelines.serving.model`) and returns the score, the
model version and every value used, with how it was obtained. Nothing is written: the event's own features
reach the online store when the stream processes it.

The handler is ``async`` and does its sub-millisecond work inline: Feast's SDK and XGBoost are synchronous,
and a thread-pool hop would cost about as much as the lookup. Registry and model refreshes run in a background
task (in a thread), never inside a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Response
from fastapi.exceptions import RequestValidationError

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.domains.base import Domain
from pipelines.errors import FeaturestreamError
from pipelines.lookups.catalog import FeatureSelection
from pipelines.lookups.online import FeatureLookup, parse_response
from pipelines.serving.model import ProductionModel
from pipelines.serving.request_features import Basis, features_at_request
from pipelines.serving.schemas import EntityLookup, Health, ModelInfo, ScoreResponse, Transaction
from pipelines.serving.validation import RequestRules

log = logging.getLogger(__name__)


@dataclass
class ScoringService:
    """Everything a request needs, built once: the lookup client, the rules, the model and the selections."""

    settings: Settings
    domain: Domain
    lookup: FeatureLookup
    rules: RequestRules
    model: ProductionModel
    selections: dict[str, FeatureSelection]

    @classmethod
    def build(cls, settings: Settings, lookup: FeatureLookup | None = None) -> ScoringService:
        domain = get_domain(settings.stream.domain)
        lookup = lookup or FeatureLookup(settings)
        selections = {
            features.entity: lookup.select(features.entity, features=features.feature_names)
            for features in domain.entities
        }
        service = cls(settings, domain, lookup, RequestRules.default(), ProductionModel(settings, domain), selections)
        service.model.refresh()
        service.lookup_entities({features.key_column: "__warm_up__" for features in domain.entities})
        return service

    def refresh(self) -> None:
        """Re-read Feast's registry and follow the production alias (background task)."""
        self.lookup.refresh()
        self.model.refresh()

    def lookup_entities(self, row: dict[str, str]) -> dict[str, Any]:
        """Each entity's stored features for one transaction, in one Feast read."""
        refs = [ref for selection in self.selections.values() for ref in selection.refs]
        proto = self.lookup.store.get_online_features(features=refs, entity_rows=[row]).proto
        return {
            entity: parse_response(proto, selection, [row[selection.entity.join_key]])[0]
            for entity, selection in self.selections.items()
        }

    def score(self, transaction: Transaction, received_at: datetime) -> ScoreResponse:
        event_time = _event_time(transaction.event_time, received_at)
        record = {**transaction.model_dump(), "event_time": event_time}
        violations = self.rules.violations(record, received_at)
        if violations:
            raise RequestValidationError(
                [
                    {
                        "type": "expectation_failed",
                        "loc": ("body", violation.column),
                        "msg": violation.message,
                        "input": record.get(violation.column),
                        "ctx": {"expectation": violation.expectation},
                    }
                    for violation in violations
                ]
            )
        model = self.model.current
        if model is None:
            raise HTTPException(status_code=503, detail=self.model.problem or "no production model")

        stored = self.lookup_entities({f.key_column: record[f.key_column] for f in self.domain.entities})
        values: dict[str, float | int | None] = {}
        basis: dict[str, Basis] = {}
        entities: dict[str, EntityLookup] = {}
        for feature_set in self.domain.entities:
            found = stored[feature_set.entity]
            rebuilt = features_at_request(
                feature_set, found.values if found.found else None, found.event_time, record, event_time
            )
            values.update(rebuilt.values)
            basis.update(rebuilt.basis)
            age = (received_at - found.event_time).total_seconds() if found.event_time else None
            entities[feature_set.entity] = EntityLookup(
                id=found.entity_id, status=found.status, event_time=found.event_time, age_seconds=age
            )
        used = {name: values[name] for name in model.feature_names}
        score = self.model.score(model, used)
        return ScoreResponse(
            event_id=transaction.event_id,
            score=score,
            is_alert=score >= model.threshold,
            threshold=model.threshold,
            model_name=model.name,
            model_version=model.version,
            event_time=event_time,
            features=used,
            feature_basis={name: basis[name] for name in model.feature_names},
            entities=entities,
            scored_at=datetime.now(UTC),
        )

    def health(self) -> Health:
        model = self.model.current
        if model is None:
            return Health(status="no_model", model=None, detail=self.model.problem)
        info = ModelInfo(
            name=model.name,
            version=model.version,
            feature_service=self.model.feature_service(model),
            features=list(model.feature_names),
        )
        return Health(status="ok", model=info, detail=self.model.problem)


def _event_time(value: datetime | int | None, received_at: datetime) -> datetime:
    if value is None:
        return received_at
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    return value.astimezone(UTC)


async def _refresh_forever(service: ScoringService, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(service.refresh)
        except Exception:  # keep serving with what was loaded; the next round tries again
            log.exception("background refresh failed")


def create_app(settings: Settings, service: ScoringService | None = None) -> FastAPI:
    """The app; the service (Feast store, model, rules) is built at start-up, unless one is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = service or await asyncio.to_thread(ScoringService.build, settings)
        refresher = asyncio.create_task(_refresh_forever(app.state.service, settings.serving.registry_refresh_s))
        try:
            yield
        finally:
            refresher.cancel()

    app = FastAPI(
        title="featurestream scoring",
        summary="Request-time fraud scores from online features and the production model.",
        version="1",
        lifespan=lifespan,
    )

    @app.post(
        "/score",
        response_model=ScoreResponse,
        responses={
            422: {"description": "The transaction breaks its schema or the expectation suite (each error says which)."},
            503: {"description": "No usable production model, or the feature store cannot be read."},
        },
    )
    async def score(transaction: Transaction) -> Response:
        """Score one transaction with the production model on its card's and merchant's online features."""
        received_at = datetime.now(UTC)
        try:
            result: ScoreResponse = app.state.service.score(transaction, received_at)
        except FeaturestreamError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        # Serialized here: returned as a model, FastAPI would validate it a second time against response_model
        # (which stays, for the OpenAPI schema).
        return Response(content=result.model_dump_json(), media_type="application/json")

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        """Whether a production model is loaded (and which), or why not."""
        return app.state.service.health()

    return app
