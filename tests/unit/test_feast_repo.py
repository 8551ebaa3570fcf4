"""The Feast repository in features/ and how featurestream applies it: state under the state dir only."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from feast.types import Float64, Int64

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.feast_io.offline import offline_batch_path
from pipelines.feast_io.paths import feast_paths
from pipelines.feast_io.store import FEATURE_STORE_YAML, apply_repo, definition_settings, feature_store, repo_config
from pipelines.testing import isolated_settings

CARD_DTYPES = {
    "card_txn_count_10m": Int64,
    "card_txn_count_1h": Int64,
    "card_txn_count_24h": Int64,
    "card_amount_sum_1h": Float64,
    "card_amount_sum_24h": Float64,
    "card_amount_max_24h": Float64,
    "card_amount_mean_24h": Float64,
    "card_distinct_merchants_24h": Int64,
    "card_seconds_since_prev_txn": Float64,
}
MERCHANT_DTYPES = {"merchant_txn_count_1h": Int64, "merchant_amount_mean_24h": Float64}


def repo_files() -> dict[Path, float]:
    return {path: path.stat().st_mtime for path in (PROJECT_ROOT / "features").rglob("*") if path.is_file()}


def test_apply_registers_the_fraud_repository_under_the_state_dir(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    before = repo_files()

    apply_repo(settings)

    store = feature_store(settings)
    assert {entity.name: entity.join_key for entity in store.list_entities()} == {
        "card": "card_id",
        "merchant": "merchant_id",
    }
    for view_name, dtypes, key in (
        ("card_features", CARD_DTYPES, "card_id"),
        ("merchant_features", MERCHANT_DTYPES, "merchant_id"),
    ):
        view = store.get_feature_view(view_name)
        assert {feature.name: feature.dtype for feature in view.features} == dtypes
        assert [column.name for column in view.entity_columns] == [key]
        assert view.batch_source.timestamp_field == "event_time"
        assert view.batch_source.path == str(feast_paths(settings).offline_root / view_name)
        assert view.ttl in (None, timedelta(0))  # unbounded, like the online store
    service = store.get_feature_service("fraud_model_v1")
    assert sorted(projection.name for projection in service.feature_view_projections) == [
        "card_features",
        "merchant_features",
    ]
    paths = feast_paths(settings)
    assert paths.registry.is_file() and paths.online_db.is_file()
    assert all(path.is_relative_to(tmp_path / "state" / "feast") for path in vars(paths).values())
    assert repo_files() == before  # nothing written into the repository


def test_apply_is_repeatable_and_removes_what_the_definitions_drop(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(PROJECT_ROOT / "features", repo)
    settings = isolated_settings(tmp_path / "state", feast={"repo_path": repo})
    apply_repo(settings)
    apply_repo(settings)

    with (repo / "card_fraud.py").open("a") as definitions:  # drop the merchant view from the definitions
        definitions.write("\ndel merchant_features, merchant_features_source, merchant\n")
        definitions.write("fraud_model_v1 = FeatureService(name='fraud_model_v1', features=[card_features])\n")
    specs = apply_repo(settings)

    assert sorted(specs) == ["card_features"]
    assert [view.name for view in feature_store(settings).list_feature_views()] == ["card_features"]


def test_the_yaml_paths_are_the_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Feast's own CLI reads features/feature_store.yaml as is: its relative paths must match the defaults."""
    import yaml

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((PROJECT_ROOT / "features" / FEATURE_STORE_YAML).read_text())
    defaults = feast_paths(Settings())
    repo = PROJECT_ROOT / "features"
    assert (repo / raw["registry"]["path"]).resolve() == defaults.registry.resolve()
    assert (repo / raw["online_store"]["path"]).resolve() == defaults.online_db.resolve()


def test_repo_config_takes_paths_from_settings(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state", feast={"online_path": tmp_path / "elsewhere" / "o.db"})
    config = repo_config(settings)
    assert config.project == "featurestream"
    assert config.entity_key_serialization_version == 3
    assert config.registry.path == str(tmp_path / "state" / "feast" / "registry.db")
    assert config.online_store.path == str(tmp_path / "elsewhere" / "o.db")
    assert config.repo_path == PROJECT_ROOT / "features"


def test_redis_is_configured_by_settings_alone(tmp_path: Path) -> None:
    pytest.importorskip("redis", reason="Feast's Redis store needs the redis package (feast[redis]), not installed")
    settings = isolated_settings(
        tmp_path, feast={"online_store": "redis", "redis_connection_string": "redis-1:6379,password=s3cret"}
    )
    config = repo_config(settings)
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "redis-1:6379,password=s3cret"
    assert "s3cret" not in repr(settings)


def test_definitions_outside_apply_use_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATURESTREAM_FEAST__OFFLINE_ROOT", str(tmp_path / "offline"))
    assert feast_paths(definition_settings()).offline_root == tmp_path / "offline"


def test_offline_batch_paths_are_one_folder_per_batch(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    assert offline_batch_path(settings, "card_features", 7) == str(
        tmp_path / "feast" / "offline" / "card_features" / "batch_id=7"
    )
    with pytest.raises(ValueError):
        offline_batch_path(settings, "card_features", -1)


def test_the_feast_views_match_the_declared_domain(tmp_path: Path) -> None:
    """The stream computes what pipelines.domains declares; Feast must store exactly that, with the same types."""
    from pipelines.domains import DOMAINS

    specs = apply_repo(isolated_settings(tmp_path))
    for domain in DOMAINS.values():
        for entity in domain.entities:
            spec = specs[entity.feature_view]
            assert spec.join_keys == (entity.key_column,)
            assert spec.timestamp_field == domain.event_time_column
            assert [(f.name, f.dtype) for f in spec.features] == [
                (a.name, {"int64": "Int64", "float64": "Float64"}[a.dtype]) for a in entity.aggregates
            ]
