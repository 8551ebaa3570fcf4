"""Load the Feast objects a feature repository defines, as `feast apply` does, without changing directory.

Feast's own ``parse_repo`` imports each definition file under a module name derived from the *current working
directory* (``feast apply`` chdirs into the repository first) and caches it in ``sys.modules``, so a second apply
in the same process with other settings would silently reuse the first import. Here each file is executed afresh
under a private module name; the objects are collected the way ``parse_repo`` collects them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pipelines.feast_io.errors import FeatureRepoError

if TYPE_CHECKING:
    from feast.repo_contents import RepoContents

_MODULE_PREFIX = "featurestream_feast_repo"


def _execute(path: Path, index: int) -> ModuleType:
    """Run one definition file as a fresh module; compiled here so no __pycache__ lands in the repository."""
    module = ModuleType(f"{_MODULE_PREFIX}.m{index}_{path.stem}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # some definitions (dataclasses, pickling) look themselves up there
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    except Exception as exc:
        raise FeatureRepoError(f"Feast definitions in {path} failed to load: {exc}") from exc
    return module


def _add(bucket: list[Any], obj: Any) -> None:
    if obj is not None and not any(existing is obj for existing in bucket):
        bucket.append(obj)


def _collect(contents: RepoContents, obj: Any) -> None:
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView, Project, StreamFeatureView
    from feast.data_source import DataSource
    from feast.labeling.label_view import LabelView
    from feast.permissions.permission import Permission

    if isinstance(obj, DataSource):
        _add(contents.data_sources, obj)
        _add(contents.data_sources, getattr(obj, "batch_source", None))  # push / Kafka / Kinesis sources
    elif isinstance(obj, StreamFeatureView):
        _add(contents.stream_feature_views, obj)
        _add(contents.data_sources, obj.batch_source)
        _add(contents.data_sources, obj.stream_source)
    elif isinstance(obj, FeatureView):  # batch feature views included, as in parse_repo
        _add(contents.feature_views, obj)
        _add(contents.data_sources, obj.batch_source)
        _add(contents.data_sources, obj.stream_source)
    elif isinstance(obj, OnDemandFeatureView):
        _add(contents.on_demand_feature_views, obj)
    elif isinstance(obj, Entity):
        _add(contents.entities, obj)
    elif isinstance(obj, FeatureService):
        _add(contents.feature_services, obj)
    elif isinstance(obj, LabelView):
        _add(contents.label_views, obj)
        _add(contents.data_sources, obj.source)
    elif isinstance(obj, Permission):
        _add(contents.permissions, obj)
    elif isinstance(obj, Project):
        _add(contents.projects, obj)


def load_repo_contents(repo_path: Path) -> RepoContents:
    """Every Feast object defined at module level in the repository's .py files (honouring .feastignore)."""
    from feast.feature_view import DUMMY_ENTITY
    from feast.repo_contents import RepoContents
    from feast.repo_operations import get_repo_files

    if not repo_path.is_dir():
        raise FeatureRepoError(f"the Feast repository {repo_path} does not exist")
    contents = RepoContents(
        projects=[],
        data_sources=[],
        feature_views=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[],
        feature_services=[],
        permissions=[],
    )
    for index, path in enumerate(get_repo_files(repo_path)):
        for obj in vars(_execute(path, index)).values():
            _collect(contents, obj)
    contents.entities.append(DUMMY_ENTITY)
    return contents
