"""The model registry: immutable numbered versions and a ``production`` alias that switches atomically.

Why a versioned directory and not MLflow's model registry. MLflow is not installed and would bring a server-
shaped dependency tree (SQLAlchemy, alembic, Flask, its tracking store) into a library whose Spark executors
only need to read one file. What the issue asks of MLflow (immutable versions, an alias switched atomically,
rollback) POSIX file operations give directly, and the result is readable with ``cat`` and ``ls``:

    <root>/<model_name>/
        versions/<N>/model.ubj        XGBoost's own UBJSON format, read-only once registered
        versions/<N>/metadata.json    ModelMetadata: features (ordered), service, window, counts, metrics, sha256
        aliases/production.json       current version, the promotion stack (for rollback) and an audit history
        .allocated/<N>/               empty folders: version numbers handed out (never reused)
        .staging/                     versions being written (invisible to readers)
        .lock                         serialises alias changes

Guarantees, and how:

- **Version numbers are allocated safely without a lock**: ``os.mkdir(.allocated/N)`` either creates the
  folder or fails because it exists, atomically, so two concurrent registrations (threads or processes) never
  get the same N. A registration that dies after allocating leaves a gap, never a reused number.
- **Versions are immutable and appear whole**: files are written (and fsynced) into ``.staging/<random>/``,
  made read-only, then that folder is renamed to ``versions/N`` in one ``rename(2)``, which never replaces a
  non-empty folder. Readers see a version completely or not at all; nothing in this module ever opens a
  registered version for writing. ``load_booster`` checks the model file's sha256 against the metadata, so an
  edit made behind the registry's back is an error, not a silently different model.
- **The alias switches atomically**: the new alias document is written to a temporary file, fsynced and
  ``os.replace``-d over ``production.json``; a reader sees the old or the new alias, never a mix. The promotion
  stack (what rollback returns to) lives in the same document, so alias and history cannot disagree.
  Read-modify-write of the alias is serialised with ``flock`` on ``.lock`` (the root must be on a filesystem
  with working ``flock``: local disks do; some network filesystems do not).
- **Rollback** pops the current production version off the stack and makes the one promoted before it current;
  promoting the same version twice in a row is a no-op, so rollback always moves to a different version.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pipelines.config import ModelSettings, Settings
from pipelines.models.errors import (
    EmptyRegistryError,
    ModelIntegrityError,
    ModelRegistryError,
    NoProductionModelError,
    NothingToRollBackError,
    UnknownModelVersionError,
)
from pipelines.models.metadata import ModelMetadata, TrainingSummary

if TYPE_CHECKING:
    import xgboost as xgb

MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"
PRODUCTION = "production"
CHALLENGER = "challenger"
"""The shadow model: scored on the same events as production, published to its own topic, never alerting."""
DEFAULT_MODEL_NAME: str = ModelSettings.model_fields["model_name"].default
_READ_ONLY = 0o444


def registry_root(settings: Settings) -> Path:
    """The registry's root folder: ``models.registry_dir``, else ``<state_dir>/models``."""
    return (settings.models.registry_dir or settings.stack.state_dir / "models").absolute()


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where it lives and what its metadata says."""

    model_name: str
    version: int
    path: Path
    metadata: ModelMetadata

    @property
    def model_path(self) -> Path:
        return self.path / self.metadata.model_file

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.metadata.training.feature_names


@dataclass(frozen=True)
class AliasChange:
    """One entry of an alias's audit history."""

    action: str
    version: int
    at: str


class ModelRegistry:
    """Versions of one model under ``<root>/<model_name>`` (see the module docstring for the guarantees)."""

    def __init__(self, root: Path, model_name: str = DEFAULT_MODEL_NAME) -> None:
        if not model_name or "/" in model_name or model_name.startswith("."):
            raise ModelRegistryError(f"invalid model name {model_name!r}")
        self.root = Path(root).absolute()
        self.model_name = model_name
        self.home = self.root / model_name
        self._versions = self.home / "versions"
        self._allocated = self.home / ".allocated"
        self._staging = self.home / ".staging"
        self._aliases = self.home / "aliases"

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        return cls(registry_root(settings), settings.models.model_name)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r}, {self.model_name!r})"

    # -- versions -------------------------------------------------------------------------------------------

    def register(
        self, booster: xgb.Booster, training: TrainingSummary, extra_files: Mapping[str, bytes] | None = None
    ) -> ModelVersion:
        """Store ``booster`` as the next version; it is complete and immutable when this returns.

        ``extra_files`` (name -> bytes) are sealed into the version with the model, e.g. the drift baseline
        the monitoring compares live traffic with."""
        import xgboost

        version = self._allocate_version()
        self._staging.mkdir(parents=True, exist_ok=True)
        staging = self._staging / f"{version}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            model_bytes = bytes(booster.save_raw(raw_format="ubj"))
            _write_durably(staging / MODEL_FILE, model_bytes)
            metadata = ModelMetadata(
                model_name=self.model_name,
                version=version,
                created_at=datetime.now(UTC),
                xgboost_version=xgboost.__version__,
                model_file=MODEL_FILE,
                model_sha256=hashlib.sha256(model_bytes).hexdigest(),
                training=training,
            )
            _write_durably(staging / METADATA_FILE, (metadata.model_dump_json(indent=2) + "\n").encode())
            extras = dict(extra_files or {})
            for name, data in extras.items():
                if Path(name).name != name or name in (MODEL_FILE, METADATA_FILE):
                    raise ValueError(f"extra file name {name!r} must be a plain file name other than the model's")
                _write_durably(staging / name, data)
            for written in (MODEL_FILE, METADATA_FILE, *extras):
                (staging / written).chmod(_READ_ONLY)
            self._versions.mkdir(parents=True, exist_ok=True)
            # N is ours alone (allocated above); rename(2) would refuse a non-empty target anyway.
            staging.rename(self._versions / str(version))
            _fsync_dir(self._versions)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.version(version)

    def versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first."""
        return [self.version(number) for number in self._numbers()]

    def version(self, version: int) -> ModelVersion:
        """One version by number; :class:`UnknownModelVersionError` if it was never registered."""
        path = self._versions / str(version)
        metadata_file = path / METADATA_FILE
        if not metadata_file.is_file():
            raise self._unknown(version)
        try:
            metadata = ModelMetadata.model_validate_json(metadata_file.read_bytes())
        except ValidationError as exc:
            raise ModelIntegrityError(f"{metadata_file} is not valid model metadata: {exc}") from exc
        if metadata.version != version or metadata.model_name != self.model_name:
            raise ModelIntegrityError(
                f"{metadata_file} describes {metadata.model_name} v{metadata.version}, not {self.model_name} v{version}"
            )
        return ModelVersion(self.model_name, version, path, metadata)

    def latest(self) -> ModelVersion:
        versions = self.versions()
        if not versions:
            raise self._empty()
        return versions[-1]

    def load_booster(self, version: int | ModelVersion) -> xgb.Booster:
        """The version's booster, after checking its file is byte for byte the registered one."""
        import xgboost

        model = version if isinstance(version, ModelVersion) else self.version(version)
        data = model.model_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != model.metadata.model_sha256:
            raise ModelIntegrityError(
                f"{model.model_path} has sha256 {digest}, registered as {model.metadata.model_sha256}: "
                "the file was changed after registration"
            )
        booster = xgboost.Booster()
        booster.load_model(bytearray(data))
        return booster

    # -- the production alias -----------------------------------------------------------------------------------

    def production(self) -> ModelVersion | None:
        """The version production should score with, or None if nothing was ever promoted (or all rolled back)."""
        stack = self._read_alias(PRODUCTION)["stack"]
        return self.version(stack[-1]) if stack else None

    def alias_history(self, alias: str = PRODUCTION) -> list[AliasChange]:
        """Every promote and rollback of the alias, oldest first."""
        return [AliasChange(**entry) for entry in self._read_alias(alias)["history"]]

    def promote(self, version: int) -> ModelVersion:
        """Make ``version`` production (atomically); promoting the current production version changes nothing."""
        model = self.version(version)
        self.load_booster(model)  # never promote a version whose file does not check out
        with self._locked():
            document = self._read_alias(PRODUCTION)
            if document["stack"] and document["stack"][-1] == version:
                return model
            document["stack"].append(version)
            document["history"].append(_change("promote", version))
            self._write_alias(PRODUCTION, document)
        return model

    def rollback(self) -> ModelVersion:
        """Return production to the version promoted before the current one; returns that version."""
        with self._locked():
            document = self._read_alias(PRODUCTION)
            stack: list[int] = document["stack"]
            if not stack:
                raise NoProductionModelError(f"{self.model_name} has no production version to roll back from")
            if len(stack) < 2:
                raise NothingToRollBackError(
                    f"{self.model_name} v{stack[-1]} is the first version promoted to production: "
                    "there is no earlier production version to roll back to"
                )
            stack.pop()
            document["history"].append(_change("rollback", stack[-1]))
            self._write_alias(PRODUCTION, document)
            return self.version(stack[-1])

    # -- the challenger (shadow) alias ------------------------------------------------------------------------

    def challenger(self) -> ModelVersion | None:
        """The version scored in shadow next to production, or None."""
        stack = self._read_alias(CHALLENGER)["stack"]
        return self.version(stack[-1]) if stack else None

    def set_challenger(self, version: int | None) -> ModelVersion | None:
        """Make ``version`` the shadow model (atomically), or stop shadow scoring with None."""
        model = self.version(version) if version is not None else None
        if model is not None:
            self.load_booster(model)  # never shadow a version whose file does not check out
        with self._locked():
            document = self._read_alias(CHALLENGER)
            document["stack"] = [version] if version is not None else []
            document["history"].append(_change("challenge" if version is not None else "clear", version or 0))
            self._write_alias(CHALLENGER, document)
        return model

    # -- internals -----------------------------------------------------------------------------------------

    def _numbers(self) -> list[int]:
        if not self._versions.is_dir():
            return []
        return sorted(int(entry.name) for entry in self._versions.iterdir() if entry.name.isdigit())

    def _allocate_version(self) -> int:
        self._allocated.mkdir(parents=True, exist_ok=True)
        taken = [int(entry.name) for entry in self._allocated.iterdir() if entry.name.isdigit()]
        candidate = max(taken, default=0) + 1
        while True:
            try:
                (self._allocated / str(candidate)).mkdir()
            except FileExistsError:
                candidate += 1  # another registration took it between our listing and our mkdir
                continue
            return candidate

    def _alias_file(self, alias: str) -> Path:
        return self._aliases / f"{alias}.json"

    def _read_alias(self, alias: str) -> dict[str, Any]:
        path = self._alias_file(alias)
        if not path.is_file():
            return {"alias": alias, "stack": [], "history": []}
        try:
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelIntegrityError(f"alias file {path} is not JSON: {exc}") from exc
        if not isinstance(document.get("stack"), list) or not isinstance(document.get("history"), list):
            raise ModelIntegrityError(f"alias file {path} lacks its stack or history")
        return document

    def _write_alias(self, alias: str, document: dict[str, Any]) -> None:
        self._aliases.mkdir(parents=True, exist_ok=True)
        stack = document["stack"]
        document = {**document, "version": stack[-1] if stack else None, "updated_at": _now()}
        temporary = self._aliases / f".{alias}.{uuid.uuid4().hex}.tmp"
        try:
            _write_durably(temporary, (json.dumps(document, indent=2) + "\n").encode())
            temporary.replace(self._alias_file(alias))  # os.replace: atomic on POSIX
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_dir(self._aliases)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _empty(self) -> EmptyRegistryError:
        return EmptyRegistryError(
            f"the registry {self.root} has no versions of {self.model_name}; `featurestream train` registers one"
        )

    def _unknown(self, version: int) -> ModelRegistryError:
        known = [str(number) for number in self._numbers()]
        if not known:
            return self._empty()
        return UnknownModelVersionError(
            f"{self.model_name} has no version {version}; registered versions: {', '.join(known)}"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _change(action: str, version: int) -> dict[str, Any]:
    return {"action": action, "version": version, "at": _now()}


def _write_durably(path: Path, data: bytes) -> None:
    """Write and fsync, so a rename that follows never publishes a file whose bytes are still in flight."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
