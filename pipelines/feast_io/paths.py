"""Where Feast's state lives, resolved from settings: registry, online store and offline store under the state dir.

Unset paths default to ``<state_dir>/feast/...``, never to the repository or a shared /tmp path, so tests and
parallel deployments with their own state dir never see each other's data. Paths are made absolute here because
they end up in the registry (the offline FileSource path) and on Spark executors whose working directory differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Settings


@dataclass(frozen=True)
class FeastPaths:
    registry: Path
    online_db: Path
    offline_root: Path


def feast_paths(settings: Settings) -> FeastPaths:
    feast, base = settings.feast, settings.stack.state_dir / "feast"
    return FeastPaths(
        registry=(feast.registry_path or base / "registry.db").absolute(),
        online_db=(feast.online_path or base / "online.db").absolute(),
        offline_root=(feast.offline_root or base / "offline").absolute(),
    )


def offline_view_path(settings: Settings, view: str) -> Path:
    """The folder of one feature view's offline Parquet data: what its FileSource points at."""
    return feast_paths(settings).offline_root / view
