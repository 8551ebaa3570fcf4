"""Lookups and request-time scoring against an online store filled by the real streaming job.

One module-scoped run: generated traffic with labels -> the streaming job (real broker, Spark, Feast) -> training
and promotion -> Feast's feature server and the scoring endpoint started by the stack code on free ports. Then
every lookup path (Python API, CLI, Feast's HTTP server) is checked against the stream's own offline rows, /push
against the guard, and POST /score against what the stream computes when the same transaction reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import Settings
from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.feast_io.paths import offline_view_path
from pipelines.feast_io.store import apply_repo
from pipelines.generator.generator import GeneratorOptions
from pipelines.kafka.topics import admin_client, ensure_topics
from pipelines.lookups.online import get_features
from pipelines.models import ModelRegistry
from pipelines.produce.files import produce_file
from pipelines.produce.transactions import produce_transactions
from pipelines.stack.processes import free_port
from pipelines.stack.serving import serving_down, serving_status, serving_up
from pipelines.testing import stream_settings
from pipelines.testing.streams import run_until_drained
from pipelines.training.run import run_training

COUNT = 6_000


def offline_rows(settings: Settings, view: str) -> pd.DataFrame:
    frame = pd.read_parquet(offline_view_path(settings, view))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def latest_rows(settings: Settings, view: str, key: str) -> pd.DataFrame:
    """The stream's last row per entity: what the online store must hold."""
    return offline_rows(settings, view).sort_values("event_time", kind="stable").groupby(key).tail(1).set_index(key)


def stream(spark: SparkSession, settings: Settings) -> int:
    running = run_until_drained(spark, settings)
    return sum(batch.valid for batch in running.writer.history)


@pytest.fixture(scope="module")
def served(kafka: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = stream_settings(kafka, tmp_path_factory.mktemp("serving"))
    settings = base.model_copy(
        update={
            "serving": base.serving.model_copy(update={"feature_server_port": free_port(), "score_port": free_port()})
        }
    )
    ensure_topics(admin_client(settings), settings.kafka.topics.all(), partitions=3, replication_factor=1)
    apply_repo(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    options = GeneratorOptions(
        count=COUNT,
        now_ms=int(now.timestamp() * 1000),
        seed=21,
        cards=300,
        merchants=50,
        start_ms=int((now - timedelta(days=3)).timestamp() * 1000),
        duration_ms=2 * 24 * 3600 * 1000,
    )
    produce_transactions(settings, options, labels=True)
    assert stream(spark, settings) == COUNT
    run = run_training(settings, label_cutoff=now, promote=True)
    started = serving_up(settings)
    try:
        yield {"settings": settings, "version": run.version.version, "started": started}
    finally:
        serving_down(settings)


def feature_server(settings: Settings) -> str:
    return f"http://{settings.stack.host}:{settings.serving.feature_server_port}"


def score_server(settings: Settings) -> str:
    return f"http://{settings.stack.host}:{settings.serving.score_port}"


def assert_same(got: Any, want: Any, what: str) -> None:
    if want is None or (isinstance(want, float) and np.isnan(want)):
        assert got is None, what
    else:
        assert got == pytest.approx(want, rel=1e-9), what


def test_the_stack_code_started_both_servers(served: dict[str, Any]) -> None:
    rows = serving_status(served["settings"])
    assert [name for name, _, _ in rows] == ["feast feature server", "scoring endpoint"]
    assert all("running" in state for _, state, _ in rows)


def test_python_api_cli_and_feast_http_return_the_streams_latest_values(served: dict[str, Any]) -> None:
    settings = served["settings"]
    latest = latest_rows(settings, "card_features", "card_id")
    cards = list(latest.sample(25, random_state=4).index)
    ids = [*cards, "card-that-never-was"]

    api = {result.entity_id: result for result in get_features("card", ids, settings=settings)}
    runner = CliRunner()
    env = {"FEATURESTREAM_STACK__STATE_DIR": str(settings.stack.state_dir)}
    cli = runner.invoke(app, ["features", "get", "card", *ids, "--json"], env=env)
    assert cli.exit_code == 0, cli.output
    cli_rows = {row["card_id"]: row for row in json.loads(cli.output)}
    refs = [f"card_features:{name}" for name in CARD_FEATURES.feature_names]
    http = httpx.post(
        f"{feature_server(settings)}/get-online-features", json={"features": refs, "entities": {"card_id": ids}}
    ).json()
    columns = http["metadata"]["feature_names"]
    http_values = {name: http["results"][columns.index(name)] for name in CARD_FEATURES.feature_names}

    for position, card in enumerate(cards):
        want = latest.loc[card]
        assert api[card].status == "found" and cli_rows[card]["status"] == "found"
        assert api[card].event_time == want["event_time"].floor("s").to_pydatetime()
        for name in CARD_FEATURES.feature_names:
            assert_same(api[card].values[name], want[name], f"API {card} {name}")
            assert_same(cli_rows[card][name], want[name], f"CLI {card} {name}")
            assert_same(http_values[name]["values"][position], want[name], f"HTTP {card} {name}")
    unknown = ids[-1]
    assert api[unknown].status == cli_rows[unknown]["status"] == "not_found"
    assert all(http_values[name]["statuses"][-1] == "NOT_FOUND" for name in CARD_FEATURES.feature_names)


def test_unknown_features_and_services_are_clear_errors_over_http_too(served: dict[str, Any]) -> None:
    settings = served["settings"]
    response = httpx.post(
        f"{feature_server(settings)}/get-online-features",
        json={"feature_service": "no_such_service", "entities": {"card_id": ["c"]}},
    )
    assert response.status_code == 404 and "no_such_service" in response.text


def test_push_over_http_is_guarded_against_going_back_in_time(served: dict[str, Any]) -> None:
    settings = served["settings"]
    latest = latest_rows(settings, "merchant_features", "merchant_id")
    merchant = latest.index[0]
    # One timestamp format for the column: pandas infers it from the first value (Feast parses the column so).
    older = (latest.loc[merchant, "event_time"] - timedelta(days=1)).isoformat(timespec="seconds")
    newer = datetime.now(UTC).replace(microsecond=0)
    body = {
        "push_source_name": "merchant_features_push",
        "to": "online",
        "df": {
            "merchant_id": [merchant, "merch-pushed"],
            "event_time": [older, newer.isoformat(timespec="seconds")],
            "merchant_txn_count_1h": [999, 5],
            "merchant_amount_mean_24h": [1.0, 2.5],
        },
    }
    assert httpx.post(f"{feature_server(settings)}/push", json=body).status_code == 200
    kept, pushed = get_features("merchant", [merchant, "merch-pushed"], settings=settings)
    assert kept.values["merchant_txn_count_1h"] == latest.loc[merchant, "merchant_txn_count_1h"]
    assert pushed.values == {"merchant_txn_count_1h": 5, "merchant_amount_mean_24h": 2.5}
    assert pushed.event_time == newer


def test_score_rebuilds_the_features_the_stream_computes_for_the_same_transaction(
    served: dict[str, Any], spark: SparkSession, tmp_path: Path
) -> None:
    settings = served["settings"]
    cards = offline_rows(settings, "card_features")
    last = cards.loc[cards["event_time"].idxmax()]  # the stream's latest event: a follow-up is not late
    merchant = latest_rows(settings, "merchant_features", "merchant_id").index[1]
    event_ms = int(last["event_time"].timestamp() * 1000) + 1
    transaction = {
        "event_id": "request-time-1",
        "card_id": last["card_id"],
        "merchant_id": merchant,
        "amount": 77.5,
        "currency": "EUR",
        "mcc": "5999",
        "country": "FR",
        "channel": "ECOM",
        "event_time": event_ms,
    }
    response = httpx.post(f"{score_server(settings)}/score", json=transaction)
    assert response.status_code == 200, response.text
    body = response.json()
    production = ModelRegistry.from_settings(settings).production()
    assert production is not None and body["model_version"] == production.version == served["version"]
    assert body["entities"]["card"]["status"] == body["entities"]["merchant"]["status"] == "found"
    booster = ModelRegistry.from_settings(settings).load_booster(production)
    row = [[np.nan if body["features"][n] is None else body["features"][n] for n in production.feature_names]]
    expected = booster.predict(xgb.DMatrix(np.array(row, dtype=float), feature_names=list(production.feature_names)))
    assert body["score"] == pytest.approx(float(expected[0]), rel=1e-6)

    # The same transaction through Kafka and the stream: its features must be what /score rebuilt.
    events = tmp_path / "one.jsonl"
    events.write_text(json.dumps(transaction) + "\n")
    assert produce_file(settings, events, settings.kafka.topics.transactions).ok
    assert stream(spark, settings) == 1
    at = pd.Timestamp(event_ms, unit="ms", tz="UTC")
    card_rows, merchant_rows = offline_rows(settings, "card_features"), offline_rows(settings, "merchant_features")
    card_row = card_rows[(card_rows["card_id"] == last["card_id"]) & (card_rows["event_time"] == at)]
    merchant_row = merchant_rows[(merchant_rows["merchant_id"] == merchant) & (merchant_rows["event_time"] == at)]
    assert len(card_row) == len(merchant_row) == 1
    streamed = {**card_row.iloc[0].to_dict(), **merchant_row.iloc[0].to_dict()}
    basis = body["feature_basis"]
    for name in [*CARD_FEATURES.feature_names, *MERCHANT_FEATURES.feature_names]:
        got, want = body["features"][name], streamed[name]
        if basis[name] == "stored":
            continue
        if name == "card_seconds_since_prev_txn":  # the stored event time is whole seconds
            assert want <= got <= want + 1.0, name
        else:
            assert_same(got, want, name)
    assert basis["card_txn_count_24h"] in ("folded", "exact") and basis["card_distinct_merchants_24h"] == "stored"
    stored_distinct = body["features"]["card_distinct_merchants_24h"]
    assert streamed["card_distinct_merchants_24h"] in (stored_distinct, stored_distinct + 1)


def test_score_reports_bad_input_and_unknown_entities_clearly(served: dict[str, Any]) -> None:
    settings = served["settings"]
    good = {
        "event_id": "e",
        "card_id": "card-nobody-has",
        "merchant_id": "merch-nobody-has",
        "amount": 10.0,
        "currency": "EUR",
        "mcc": "5411",
        "country": "DE",
        "channel": "POS",
    }
    body = httpx.post(f"{score_server(settings)}/score", json=good).json()
    assert body["entities"]["card"]["status"] == body["entities"]["merchant"]["status"] == "not_found"
    bad = httpx.post(f"{score_server(settings)}/score", json={**good, "country": "XX", "amount": "ten"})
    assert bad.status_code == 422
    assert ["body", "amount"] in [error["loc"] for error in bad.json()["detail"]]


def test_down_stops_both_servers(served: dict[str, Any]) -> None:
    settings = served["settings"]
    assert len(serving_down(settings)) == 2
    assert all("stopped" in state for _, state, _ in serving_status(settings))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{score_server(settings)}/health", timeout=2)
