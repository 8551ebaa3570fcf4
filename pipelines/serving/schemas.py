"""The /score request and response, as pydantic models: FastAPI derives the OpenAPI schema and the 422s from them.

The request is a transaction as ``schemas/transactions`` (v2) describes it. Only the Avro types are checked
here; the value rules (amount range, ISO codes, event time at most a day ahead) come from the expectation suite
(:mod:`pipelines.serving.validation`), as in the stream, and fail with the same 422 shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pipelines.serving.request_features import Basis


class Transaction(BaseModel):
    """One card payment to score, with the fields of the ``transactions`` Avro schema."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(description="Unique id of this event; the response names it.")
    card_id: str = Field(description="The card: features of the card entity are looked up for it.")
    merchant_id: str = Field(description="The merchant: the second feature entity.")
    amount: float = Field(description="Amount in the currency's major unit; positive, at most 50,000.")
    currency: str = Field(description="ISO 4217 alphabetic code.")
    mcc: str = Field(description="Merchant category code (ISO 18245), e.g. 5411.")
    country: str = Field(description="ISO 3166-1 alpha-2 code of the merchant's country.")
    channel: Literal["POS", "ECOM", "ATM"]
    event_time: AwareDatetime | int | None = Field(
        default=None,
        description="When the payment happened: ISO 8601 with a zone, or epoch milliseconds (as on Kafka). "
        "Omitted: the time the request is received.",
    )
    device_id: str | None = Field(default=None, description="Device fingerprint of an online payment (v2).")


class EntityLookup(BaseModel):
    """What the online store held for one entity of the transaction."""

    id: str
    status: Literal["found", "not_found"] = Field(
        description="not_found: the store has no features for this id; its features are the event's own."
    )
    event_time: datetime | None = Field(description="The stored features are as of this event (whole seconds).")
    age_seconds: float | None = Field(description="How old the stored features were at scoring time.")


class ScoreResponse(BaseModel):
    event_id: str
    score: float = Field(description="The model's fraud probability.")
    is_alert: bool = Field(description="score >= the model's alert threshold.")
    threshold: float
    model_name: str
    model_version: int
    event_time: datetime = Field(description="The event time features were computed for.")
    features: dict[str, float | int | None] = Field(description="The values the model scored, in its order.")
    feature_basis: dict[str, Basis] = Field(
        description="How each value was obtained at request time: exact, folded or stored (see the README)."
    )
    entities: dict[str, EntityLookup]
    scored_at: datetime


class ModelInfo(BaseModel):
    name: str
    version: int
    feature_service: str
    features: list[str]


class Health(BaseModel):
    status: Literal["ok", "no_model"]
    model: ModelInfo | None
    detail: str | None = None
