"""POST /score on a real Feast SQLite store and a real registry (a synthetic model), through FastAPI's client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import xgboost as xgb
from fastapi.testclient import TestClient

from pipelines.config import Settings
from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.feast_io.store import apply_repo
from pipelines.feast_io.writers import online_writer
from pipelines.models.registry import ModelRegistry
from pipelines.serving.app import create_app
from pipelines.testing import isolated_settings
from pipelines.testing.models import register_synthetic_model

STORED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
TXN = {
    "event_id": "e-1",
    "card_id": "card-1",
    "merchant_id": "merch-1",
    "amount": 250.0,
    "currency": "EUR",
    "mcc": "5411",
    "country": "DE",
    "channel": "ECOM",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = isolated_settings(tmp_path_factory.mktemp("scoring"))
    apply_repo(settings)
    writer = online_writer(settings)
    card = {name: [2] for name in CARD_FEATURES.feature_names} | {"card_amount_mean_24h": [40.0]}
    card |= {"card_amount_sum_24h": [80.0], "card_amount_max_24h": [60.0], "card_seconds_since_prev_txn": [30.0]}
    writer.write("card_features", pd.DataFrame({"card_id": ["card-1"], "event_time": [STORED_AT], **card}))
    merchant = {name: [7] for name in MERCHANT_FEATURES.feature_names}
    writer.write("merchant_features", pd.DataFrame({"merchant_id": ["merch-1"], "event_time": [STORED_AT], **merchant}))
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    register_synthetic_model(settings, seed=1)
    with TestClient(create_app(settings)) as client:
        yield client


def expected_score(settings: Settings, version: int, features: dict[str, Any]) -> float:
    registry = ModelRegistry.from_settings(settings)
    model = registry.version(version)
    row = [[float("nan") if features[n] is None else features[n] for n in model.feature_names]]
    matrix = xgb.DMatrix(row, feature_names=list(model.feature_names))
    return float(registry.load_booster(model).predict(matrix)[0])


def test_without_a_production_model_score_is_a_clear_503(tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = isolated_settings(tmp_path_factory.mktemp("no-model"))
    apply_repo(empty)
    with TestClient(create_app(empty)) as client:
        health = client.get("/health").json()
        response = client.post("/score", json=TXN)
    assert health["status"] == "no_model" and health["model"] is None
    assert response.status_code == 503
    assert (
        "no production model" in response.json()["detail"]
        and "featurestream train --promote" in response.json()["detail"]
    )


def test_a_known_card_is_scored_on_its_stored_features_folded_with_the_transaction(
    client: TestClient, settings: Settings
) -> None:
    # An explicit event time 5 minutes after the stored event: the windows do not depend on how long the
    # test session took to get here (the stored time is fixed when the module is imported).
    response = client.post("/score", json={**TXN, "event_time": (STORED_AT + timedelta(minutes=5)).isoformat()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "fraud_xgb" and body["model_version"] == 1
    assert body["entities"]["card"]["status"] == "found"
    assert datetime.fromisoformat(body["entities"]["card"]["event_time"]) == STORED_AT
    features, basis = body["features"], body["feature_basis"]
    assert features["card_txn_count_10m"] == 3 and basis["card_txn_count_10m"] == "folded"
    assert features["card_amount_sum_24h"] == 330.0 and features["card_amount_max_24h"] == 250.0
    assert features["card_amount_mean_24h"] == pytest.approx((40.0 * 2 + 250.0) / 3)
    assert features["card_distinct_merchants_24h"] == 2 and basis["card_distinct_merchants_24h"] == "stored"
    assert features["card_seconds_since_prev_txn"] == 300.0
    assert basis["card_seconds_since_prev_txn"] == "exact"
    assert features["merchant_txn_count_1h"] == 8 and basis["merchant_amount_mean_24h"] == "stored"
    assert body["score"] == pytest.approx(expected_score(settings, 1, features), rel=1e-6)
    assert body["is_alert"] == (body["score"] >= body["threshold"])


def test_an_unknown_card_is_not_found_and_scored_as_its_first_event(client: TestClient) -> None:
    body = client.post(
        "/score", json={**TXN, "card_id": "card-never-seen", "event_time": "2026-11-22T10:00:00+01:00"}
    ).json()
    assert body["entities"]["card"] == {
        "id": "card-never-seen",
        "status": "not_found",
        "event_time": None,
        "age_seconds": None,
    }
    assert body["features"]["card_txn_count_24h"] == 1 and body["features"]["card_amount_mean_24h"] == 250.0
    assert body["features"]["card_seconds_since_prev_txn"] is None
    assert all(body["feature_basis"][name] == "exact" for name in CARD_FEATURES.feature_names)
    assert body["event_time"].startswith("2026-11-22T09:00:00")


@pytest.mark.parametrize(
    ("change", "location", "kind"),
    [
        ({"amount": None}, ["body", "amount"], "float_type"),
        ({"amount": "lots"}, ["body", "amount"], "float_parsing"),
        ({"channel": "FAX"}, ["body", "channel"], "literal_error"),
        ({"event_time": "2026-11-22T10:00:00"}, ["body", "event_time"], "timezone_aware"),
        ({"colour": "red"}, ["body", "colour"], "extra_forbidden"),
        ({"amount": -5.0}, ["body", "amount"], "expectation_failed"),
        ({"currency": "QQQ"}, ["body", "currency"], "expectation_failed"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, change: dict[str, Any], location: list[str], kind: str
) -> None:
    response = client.post("/score", json={**TXN, **change})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"][:2] == location and error["type"] == kind for error in errors), errors


def test_a_missing_field_and_a_future_event_are_422s(client: TestClient) -> None:
    missing = {k: v for k, v in TXN.items() if k != "card_id"}
    assert client.post("/score", json=missing).json()["detail"][0]["loc"] == ["body", "card_id"]
    future = int((datetime.now(UTC) + timedelta(days=3)).timestamp() * 1000)
    detail = client.post("/score", json={**TXN, "event_time": future}).json()["detail"]
    assert detail[0]["ctx"]["expectation"] == "expect_column_values_to_be_between(event_time)"


def test_the_openapi_schema_describes_score(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/score"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Transaction")
    assert {"200", "422", "503"} <= set(operation["responses"])
    assert set(schema["components"]["schemas"]["Transaction"]["required"]) >= {"event_id", "card_id", "amount"}


def test_a_promotion_takes_effect_at_the_next_refresh(client: TestClient, settings: Settings) -> None:
    second = register_synthetic_model(settings, seed=2)
    assert client.post("/score", json=TXN).json()["model_version"] == 1
    client.app.state.service.refresh()  # type: ignore[attr-defined]  # what the background task does
    body = client.post("/score", json=TXN).json()
    assert body["model_version"] == second.version == 2
    assert body["score"] == pytest.approx(expected_score(settings, 2, body["features"]), rel=1e-6)
    ModelRegistry.from_settings(settings).rollback()
    client.app.state.service.refresh()  # type: ignore[attr-defined]
    assert client.post("/score", json=TXN).json()["model_version"] == 1
