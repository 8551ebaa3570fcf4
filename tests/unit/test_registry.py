"""The model registry: immutable versions, safe version numbers, an atomic production alias, rollback."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from pipelines.models import (
    EmptyRegistryError,
    ModelIntegrityError,
    ModelRegistry,
    NoProductionModelError,
    NothingToRollBackError,
    RowCounts,
    TrainingSummary,
    UnknownModelVersionError,
    registry_root,
)
from pipelines.testing import isolated_settings
from pipelines.training.metrics import evaluate

FEATURES = ("f_b", "f_a", "f_c")  # deliberately not alphabetical: the order is part of the model


def tiny_booster(seed: int = 0) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, len(FEATURES)))
    y = (x[:, 0] + rng.normal(scale=0.5, size=40) > 0).astype(int)
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURES))
    return xgb.train({"tree_method": "hist", "objective": "binary:logistic", "nthread": 1}, data, num_boost_round=3)


def summary(fingerprint: str = "f" * 64) -> TrainingSummary:
    metrics = evaluate(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.6]), threshold=0.5)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    return TrainingSummary(
        feature_names=FEATURES,
        feature_service="fraud_model_v1",
        label_column="is_fraud",
        training_window_start=at,
        training_window_end=at,
        validation_start=at,
        label_cutoff=at,
        rows=RowCounts(train=30, validation=10, train_positives=10, validation_positives=4),
        data_fingerprint=fingerprint,
        alert_threshold=0.5,
        best_iteration=2,
        params={"tree_method": "hist"},
        train_metrics=metrics,
        validation_metrics=metrics,
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", "fraud_xgb")


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in path.rglob("*") if f.is_file()
    }


def test_a_registered_version_holds_the_model_and_its_metadata(registry: ModelRegistry) -> None:
    booster = tiny_booster()
    version = registry.register(booster, summary())

    assert version.version == 1
    assert version.path == registry.root / "fraud_xgb" / "versions" / "1"
    assert sorted(p.name for p in version.path.iterdir()) == ["metadata.json", "model.ubj"]
    stored = json.loads((version.path / "metadata.json").read_text())
    assert stored["training"]["feature_names"] == list(FEATURES)
    assert stored["training"]["feature_service"] == "fraud_model_v1"
    assert stored["xgboost_version"] == xgb.__version__
    assert stored["model_sha256"] == hashlib.sha256((version.path / "model.ubj").read_bytes()).hexdigest()
    assert version.feature_names == FEATURES

    loaded = registry.load_booster(1)
    probe = xgb.DMatrix(np.random.default_rng(1).normal(size=(5, 3)), feature_names=list(FEATURES))
    np.testing.assert_array_equal(loaded.predict(probe), booster.predict(probe))
    assert loaded.feature_names == list(FEATURES)


def test_versions_are_read_only_and_never_rewritten(registry: ModelRegistry) -> None:
    first = registry.register(tiny_booster(0), summary("a" * 64))
    before = tree_digest(first.path)

    for seed in (1, 2):
        registry.register(tiny_booster(seed), summary("b" * 64))

    assert [v.version for v in registry.versions()] == [1, 2, 3]
    assert tree_digest(first.path) == before
    for file in first.path.iterdir():
        assert file.stat().st_mode & 0o222 == 0, f"{file.name} is writable"  # (root writes anyway: sha256 below)
    assert not list((registry.home / ".staging").iterdir())  # nothing half-written left behind


def test_a_model_file_changed_behind_the_registrys_back_is_refused(registry: ModelRegistry) -> None:
    version = registry.register(tiny_booster(), summary())
    model = version.model_path
    model.chmod(0o644)
    model.write_bytes(bytes(tiny_booster(seed=9).save_raw(raw_format="ubj")))

    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry.load_booster(version)
    with pytest.raises(ModelIntegrityError):
        registry.promote(version.version)
    assert registry.production() is None


def test_an_empty_registry_says_so(registry: ModelRegistry) -> None:
    assert registry.versions() == []
    assert registry.production() is None
    with pytest.raises(EmptyRegistryError, match="featurestream train"):
        registry.promote(1)
    with pytest.raises(EmptyRegistryError):
        registry.load_booster(1)
    with pytest.raises(EmptyRegistryError):
        registry.latest()
    with pytest.raises(NoProductionModelError):
        registry.rollback()


def test_an_unknown_version_names_the_known_ones(registry: ModelRegistry) -> None:
    registry.register(tiny_booster(), summary())
    registry.register(tiny_booster(), summary())
    with pytest.raises(UnknownModelVersionError, match=r"no version 7; registered versions: 1, 2"):
        registry.promote(7)
    with pytest.raises(UnknownModelVersionError):
        registry.version(0)


def test_promote_and_rollback_walk_the_production_history(registry: ModelRegistry) -> None:
    for seed in range(3):
        registry.register(tiny_booster(seed), summary())

    for version in (1, 2, 3):
        assert registry.promote(version).version == version
    registry.promote(3)  # already production: no new history entry
    assert registry.production().version == 3  # type: ignore[union-attr]

    assert registry.rollback().version == 2
    assert registry.production().version == 2  # type: ignore[union-attr]
    registry.promote(3)
    assert registry.rollback().version == 2
    assert registry.rollback().version == 1
    with pytest.raises(NothingToRollBackError, match="no earlier production version"):
        registry.rollback()
    assert registry.production().version == 1  # type: ignore[union-attr]

    actions = [(change.action, change.version) for change in registry.alias_history()]
    assert actions == [
        ("promote", 1),
        ("promote", 2),
        ("promote", 3),
        ("rollback", 2),
        ("promote", 3),
        ("rollback", 2),
        ("rollback", 1),
    ]
    alias = json.loads((registry.home / "aliases" / "production.json").read_text())
    assert alias["version"] == 1 and alias["stack"] == [1]


def test_a_failed_alias_switch_leaves_the_old_alias_whole(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(tiny_booster(0), summary())
    registry.register(tiny_booster(1), summary())
    registry.promote(1)
    alias_file = registry.home / "aliases" / "production.json"
    before = alias_file.read_bytes()

    def crash(self: Path, target: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        registry.promote(2)
    monkeypatch.undo()

    assert alias_file.read_bytes() == before
    assert registry.production().version == 1  # type: ignore[union-attr]
    assert [p.name for p in alias_file.parent.iterdir()] == ["production.json"]  # no temporary left over


def test_readers_never_see_a_half_switched_alias(registry: ModelRegistry) -> None:
    registry.register(tiny_booster(0), summary())
    registry.register(tiny_booster(1), summary())
    registry.promote(1)
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                production = registry.production()
                assert production is not None
                seen.add(production.version)
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(100):
            registry.promote(2)
            registry.rollback()
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert seen <= {1, 2}


def test_concurrent_threads_get_distinct_versions(registry: ModelRegistry) -> None:
    booster = tiny_booster()
    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(lambda _: registry.register(booster, summary()).version, range(16)))
    assert sorted(numbers) == list(range(1, 17))
    assert [v.version for v in registry.versions()] == list(range(1, 17))


def _register_in_process(root: str, model: bytes, count: int) -> list[int]:
    booster = xgb.Booster()
    booster.load_model(bytearray(model))
    registry = ModelRegistry(Path(root), "fraud_xgb")
    return [registry.register(booster, summary()).version for _ in range(count)]


def test_concurrent_processes_get_distinct_versions(registry: ModelRegistry) -> None:
    model = bytes(tiny_booster().save_raw(raw_format="ubj"))
    with ProcessPoolExecutor(max_workers=3, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_register_in_process, str(registry.root), model, 4) for _ in range(3)]
        numbers = [n for future in futures for n in future.result()]
    assert sorted(numbers) == list(range(1, 13))
    assert len(registry.versions()) == 12


def test_the_registry_lives_under_the_state_dir_unless_configured(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    assert registry_root(settings) == (tmp_path / "state" / "models").absolute()
    moved = isolated_settings(tmp_path / "state", models={"registry_dir": tmp_path / "elsewhere"})
    assert ModelRegistry.from_settings(moved).home == (tmp_path / "elsewhere" / "fraud_xgb").absolute()


def test_the_models_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli.models_commands import app

    state = tmp_path / "state"
    registry = ModelRegistry.from_settings(isolated_settings(state))
    registry.register(tiny_booster(0), summary("1" * 64))
    registry.register(tiny_booster(1), summary("2" * 64))
    runner = CliRunner()
    env = {"FEATURESTREAM_STACK__STATE_DIR": str(state), "COLUMNS": "200"}

    listed = runner.invoke(app, ["list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "111111111111" in listed.output and "222222222222" in listed.output
    assert "production" not in listed.output

    assert "v1 is production" in runner.invoke(app, ["promote", "1"], env=env).output
    promoted = runner.invoke(app, ["promote", "2"], env=env)
    assert promoted.exit_code == 0 and "v2 is production (was v1)" in promoted.output
    listed = runner.invoke(app, ["list"], env=env)
    assert next(line for line in listed.output.splitlines() if "production" in line).split()[1] == "2"

    rolled = runner.invoke(app, ["rollback"], env=env)
    assert rolled.exit_code == 0 and "v1 is production again" in rolled.output
    again = runner.invoke(app, ["rollback"], env=env)
    assert isinstance(again.exception, NothingToRollBackError)
    unknown = runner.invoke(app, ["promote", "9"], env=env)
    assert isinstance(unknown.exception, UnknownModelVersionError)

    shown = runner.invoke(app, ["show", "2"], env=env)
    assert json.loads(shown.output)["training"]["feature_names"] == list(FEATURES)


def test_the_challenger_alias_is_set_and_cleared_atomically(registry: ModelRegistry) -> None:
    registry.register(tiny_booster(0), summary("1" * 64))
    registry.register(tiny_booster(1), summary("2" * 64))
    registry.promote(1)
    assert registry.challenger() is None
    shadow = registry.set_challenger(2)
    assert shadow is not None and shadow.version == 2
    assert registry.challenger() == registry.version(2)
    assert registry.production() == registry.version(1)  # the challenger never moves production
    with pytest.raises(UnknownModelVersionError):
        registry.set_challenger(9)
    assert registry.challenger() == registry.version(2)  # a refused switch leaves the alias whole
    assert registry.set_challenger(None) is None
    assert registry.challenger() is None
    assert [change.action for change in registry.alias_history("challenger")] == ["challenge", "clear"]


def test_the_challenger_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli.models_commands import app

    state = tmp_path / "state"
    registry = ModelRegistry.from_settings(isolated_settings(state))
    registry.register(tiny_booster(0), summary("1" * 64))
    runner = CliRunner()
    env = {"FEATURESTREAM_STACK__STATE_DIR": str(state), "COLUMNS": "200"}
    assert "v1 is the challenger" in runner.invoke(app, ["challenger", "1"], env=env).output
    listed = runner.invoke(app, ["list"], env=env)
    assert "challenger" in listed.output and "production" not in listed.output
    neither = runner.invoke(app, ["challenger"], env=env)
    assert neither.exit_code != 0 and "VERSION or --clear" in neither.output
    cleared = runner.invoke(app, ["challenger", "--clear"], env=env)
    assert cleared.exit_code == 0 and "no challenger" in cleared.output
    assert registry.challenger() is None
