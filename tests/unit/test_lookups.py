"""Online lookups (Python API and CLI) on a real Feast SQLite store, and Feast's push path on the guarded store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import Settings
from pipelines.domains.card_fraud import CARD_FEATURES, MERCHANT_FEATURES
from pipelines.feast_io.store import apply_repo
from pipelines.feast_io.writers import online_writer
from pipelines.lookups.errors import (
    AmbiguousFeatureSelectionError,
    UnknownEntityTypeError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)
from pipelines.lookups.online import MAX_IDS_PER_READ, FeatureLookup, get_features
from pipelines.testing import isolated_settings

EVENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
CARDS = 6_000  # more than one read's worth of ids


def card_rows(n: int, event_time: datetime) -> pd.DataFrame:
    frame = pd.DataFrame({"card_id": [f"card-{i:06d}" for i in range(n)], "event_time": [event_time] * n})
    for position, name in enumerate(CARD_FEATURES.feature_names):
        frame[name] = [i * 10 + position for i in range(n)]
        if name == "card_seconds_since_prev_txn":
            frame[name] = [None if i == 0 else float(i) for i in range(n)]
    return frame


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated_settings(tmp_path_factory.mktemp("lookups"))
    apply_repo(settings)
    writer = online_writer(settings)
    writer.write("card_features", card_rows(CARDS, EVENT))
    merchants = pd.DataFrame(
        {"merchant_id": ["merch-1"], "event_time": [EVENT], **{n: [3] for n in MERCHANT_FEATURES.feature_names}}
    )
    writer.write("merchant_features", merchants)
    yield settings


def test_single_and_batch_lookups_return_values_times_age_and_status(store: Settings) -> None:
    lookup = FeatureLookup(store)
    ids = [f"card-{i:06d}" for i in range(CARDS)] + ["no-such-card"]
    assert len(ids) > MAX_IDS_PER_READ
    results = lookup.get_features("card", ids)
    assert [r.entity_id for r in results] == ids
    last = results[CARDS - 1]
    assert last.found and last.status == "found"
    assert last.values["card_txn_count_1h"] == (CARDS - 1) * 10 + 1
    assert last.event_time == EVENT
    expected_age = (datetime.now(UTC) - EVENT).total_seconds()  # EVENT is fixed at import, however long ago
    assert last.age_seconds is not None and abs(last.age_seconds - expected_age) < 5
    first = results[0]
    assert first.found and first.values["card_seconds_since_prev_txn"] is None  # a stored null is still found
    unknown = results[-1]
    assert unknown.status == "not_found" and unknown.event_time is None and unknown.age_seconds is None
    assert set(unknown.values) == set(CARD_FEATURES.feature_names)
    assert all(value is None for value in unknown.values.values())


def test_a_feature_service_gives_its_features_of_the_entity(store: Settings) -> None:
    [card] = get_features("card", ["card-000002"], feature_service="fraud_model_v1", settings=store)
    assert list(card.values) == CARD_FEATURES.feature_names and card.feature_service == "fraud_model_v1"
    [merchant] = get_features("merchant", ["merch-1"], feature_service="fraud_model_v1", settings=store)
    assert merchant.values == {name: 3 for name in MERCHANT_FEATURES.feature_names}


def test_explicit_features_by_name_or_reference(store: Settings) -> None:
    [card] = get_features(
        "card", ["card-000003"], features=["card_txn_count_24h", "card_features:card_amount_max_24h"], settings=store
    )
    assert card.values == {"card_txn_count_24h": 32, "card_amount_max_24h": 35}


def test_unknown_names_are_clear_errors_naming_what_exists(store: Settings) -> None:
    lookup = FeatureLookup(store)
    with pytest.raises(UnknownEntityTypeError, match="card, merchant"):
        lookup.get_features("driver", ["d1"])
    with pytest.raises(UnknownFeatureError, match="card_txn_count_1h") as error:
        lookup.get_features("card", ["card-000001"], features=["merchant_txn_count_1h"])
    assert "is not a feature of card" in str(error.value)
    with pytest.raises(UnknownFeatureServiceError, match="feature services: fraud_model_v1"):
        lookup.get_features("card", ["card-000001"], feature_service="fraud_model_v9")
    with pytest.raises(AmbiguousFeatureSelectionError):
        lookup.get_features("card", ["card-000001"], feature_service="fraud_model_v1", features=["card_txn_count_1h"])


def cli_env(settings: Settings) -> dict[str, str]:
    return {"FEATURESTREAM_STACK__STATE_DIR": str(settings.stack.state_dir), "COLUMNS": "200"}


def test_cli_prints_json_or_a_table_for_several_ids(
    store: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no featurestream.toml
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["features", "get", "card", "card-000004", "nope", "-f", "card_txn_count_10m", "--json"],
        env=cli_env(store),
    )
    assert result.exit_code == 0, result.output
    found, missing = json.loads(result.output)
    assert found == {
        "card_id": "card-000004",
        "card_txn_count_10m": 40,
        "event_time": EVENT.isoformat(),
        "age_seconds": pytest.approx(found["age_seconds"]),
        "status": "found",
    }
    assert missing["status"] == "not_found" and missing["card_txn_count_10m"] is None

    table = runner.invoke(
        app, ["features", "get", "card", "card-000004", "card-000005", "-s", "fraud_model_v1"], env=cli_env(store)
    )
    assert table.exit_code == 0, table.output
    assert "card-000005" in table.output and "card_amount_mean_24h" in table.output and "found" in table.output

    wrong = runner.invoke(app, ["features", "get", "card", "card-000004", "-s", "nope"], env=cli_env(store))
    assert wrong.exit_code != 0 and isinstance(wrong.exception, UnknownFeatureServiceError)


def test_feast_push_on_the_served_store_never_goes_back_in_time(store: Settings) -> None:
    """Feast's own push path (what the feature server's /push calls), on the config the server runs with."""
    from feast import FeatureStore, RepoConfig
    from feast.data_source import PushMode

    from pipelines.stack.feature_server import served_config

    config = RepoConfig(**served_config(store))
    feast_store = FeatureStore(config=config, repo_path=str(store.feast.repo_path))
    newer, older = EVENT + timedelta(minutes=1), EVENT - timedelta(days=1)
    pushed = card_rows(3, older)
    pushed.loc[2, "card_id"] = "card-pushed"
    pushed.loc[2, "event_time"] = newer
    pushed["card_txn_count_1h"] = 999
    feast_store.push("card_features_push", pushed, to=PushMode.ONLINE)

    lookup = FeatureLookup(store)
    kept, _, new = lookup.get_features("card", ["card-000000", "card-000001", "card-pushed"])
    assert kept.values["card_txn_count_1h"] == 1 and kept.event_time == EVENT  # the older push was ignored
    assert new.values["card_txn_count_1h"] == 999 and new.event_time == newer
