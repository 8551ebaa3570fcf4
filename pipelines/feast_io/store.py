"""Feast's FeatureStore built from settings, and `featurestream features apply` (Feast's `feast apply`).

``features/feature_store.yaml`` holds what is the same on every machine (project, provider, entity key
serialization, offline store type, anything else Feast reads from it). The paths, which depend on the state dir,
come from settings and replace the yaml's on the :class:`~feast.RepoConfig` built here. Why not ``${VAR}`` in
the yaml: Feast 0.67 does expand it (``os.path.expandvars`` in ``repo_config.load_repo_config``), but an unset
variable stays literal text and there is no default syntax, so a missing variable would quietly create a
directory named ``${...}``. The relative paths left in the yaml serve Feast's own CLI (``feast -c features ...``)
and equal the default state dir (a unit test keeps them in step).

The definition files in features/ place each FileSource under the offline root of :func:`definition_settings`:
the settings given to :func:`apply_repo`, or under Feast's CLI, the environment / config file / defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import Settings, load_settings
from pipelines.feast_io.errors import FeatureRepoError
from pipelines.feast_io.paths import feast_paths
from pipelines.feast_io.redis_connection import redis_connection
from pipelines.feast_io.repo_loader import load_repo_contents
from pipelines.feast_io.sqlite_writer import prepare_online_tables
from pipelines.feast_io.views import ViewSpec, view_specs

if TYPE_CHECKING:
    from feast import FeatureStore, RepoConfig

FEATURE_STORE_YAML = "feature_store.yaml"

_definition_settings: ContextVar[Settings | None] = ContextVar("featurestream_feast_definition_settings", default=None)


def definition_settings() -> Settings:
    """The settings the repository's definition files take their paths from (see the module docstring)."""
    return _definition_settings.get() or load_settings()


@contextmanager
def _defining_with(settings: Settings) -> Iterator[None]:
    token = _definition_settings.set(settings)
    try:
        yield
    finally:
        _definition_settings.reset(token)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships with Feast, its stubs do not

    if not path.is_file():
        raise FeatureRepoError(f"{path} does not exist: settings.feast.repo_path must name the Feast repository")
    # Same parsing as Feast's load_repo_config, ${VAR} expansion included.
    raw = yaml.safe_load(os.path.expandvars(path.read_text(encoding="utf-8")))
    if not isinstance(raw, dict):
        raise FeatureRepoError(f"{path} is not a YAML mapping")
    return raw


def repo_config(settings: Settings) -> RepoConfig:
    """feature_store.yaml with the registry and online store paths taken from settings."""
    from feast import RepoConfig

    repo_path = settings.feast.repo_path.absolute()
    raw = _read_yaml(repo_path / FEATURE_STORE_YAML)
    paths = feast_paths(settings)
    raw["registry"] = {"registry_type": "file", "path": str(paths.registry)}
    if settings.feast.online_store == "sqlite":
        raw["online_store"] = {"type": "sqlite", "path": str(paths.online_db)}
    else:
        # Keeps the yaml's other Redis options (key_ttl_seconds, ...) if it names a Redis store itself.
        yaml_store = raw.get("online_store")
        base: dict[str, Any] = yaml_store if isinstance(yaml_store, dict) else {}
        extra = {k: v for k, v in base.items() if k not in ("type", "path")} if base.get("type") == "redis" else {}
        raw["online_store"] = {
            **extra,
            "type": "redis",
            "connection_string": redis_connection(settings).feast_connection_string,
        }
    config = RepoConfig(**raw)
    config.repo_path = repo_path
    return config


def feature_store(settings: Settings) -> FeatureStore:
    """A FeatureStore on the settings' registry and stores (their folders are created if missing)."""
    from feast import FeatureStore

    config = repo_config(settings)
    paths = feast_paths(settings)
    # Feast's SQLite store creates only the last folder of its path; create the whole state layout.
    for folder in (paths.registry.parent, paths.online_db.parent, paths.offline_root):
        folder.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(config.repo_path), config=config)


def apply_repo(settings: Settings) -> dict[str, ViewSpec]:
    """Register the repository's definitions and create their online tables, as `feast apply` would.

    Objects removed from the definitions are removed from the registry (and their online tables dropped), like
    `feast apply`. FileSource validation is skipped: the streaming job creates the Parquet data after the apply.
    For SQLite, the store is then switched to WAL and given the writers' guard column. Returns the applied views.
    """
    from feast import Project
    from feast.repo_operations import apply_total_with_repo_instance

    store = feature_store(settings)
    with _defining_with(settings):
        contents = load_repo_contents(store.repo_path)
    if not contents.projects:
        contents.projects.append(Project(name=store.project, description=store.config.project_description or ""))
    elif [project.name for project in contents.projects] != [store.project]:
        raise FeatureRepoError(f"a Project in the repository must be {store.project!r}, as in {FEATURE_STORE_YAML}")
    apply_total_with_repo_instance(store, store.project, store.registry, contents, skip_source_validation=True)
    specs = view_specs(store)
    if settings.feast.online_store == "sqlite":
        prepare_online_tables(feast_paths(settings).online_db, specs)
    return specs
