"""The schemas in ``schemas/``: every version of every subject, parsed once, indexed by fingerprint.

Layout: ``schemas/<subject>/v<N>.avsc``, N = 1, 2, ... without gaps. The highest version is the subject's
current schema: writers use it and readers resolve every older version to it. Old versions stay in the
repository because records written with them are still on topics; the registry-less wire format names its
writer schema by the CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form (Avro spec), so a reader
needs all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, fingerprint, to_parsing_canonical_form

from pipelines.config import PROJECT_ROOT
from pipelines.errors import FeaturestreamError

SCHEMAS_ROOT = PROJECT_ROOT / "schemas"
_VERSION_FILE = re.compile(r"^v(?P<version>[1-9]\d*)\.avsc$")


class SchemaError(FeaturestreamError):
    """A schema file is missing, unreadable, not valid Avro, or the version history has a gap."""


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one subject's schema."""

    subject: str
    version: int
    path: Path
    definition: Mapping[str, Any] = field(repr=False, hash=False, compare=False)
    """The schema as written in the file (with docs and logical types)."""
    canonical_form: str = field(repr=False, hash=False, compare=False)
    """Avro Parsing Canonical Form: what the fingerprint is computed over (docs, defaults, logical types dropped)."""
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form, as the 8 little-endian bytes the single-object encoding carries."""

    @property
    def full_name(self) -> str:
        namespace = self.definition.get("namespace")
        return f"{namespace}.{self.definition['name']}" if namespace else str(self.definition["name"])

    def json(self) -> str:
        """The schema as a JSON string (what a Schema Registry is given)."""
        return json.dumps(self.definition)


def fingerprint_of(definition: Mapping[str, Any]) -> tuple[str, bytes]:
    """Canonical form and its CRC-64-AVRO fingerprint (8 bytes, little-endian as in single-object encoding).

    fastavro returns the fingerprint as hex of those little-endian bytes (its value for ``"null"`` is
    ``8a8f25cce724dd63``, the spec's 0x63dd24e7cc258f8a), so the hex converts straight to the wire bytes.
    """
    canonical: str = to_parsing_canonical_form(dict(definition))
    return canonical, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def load_version(subject: str, version: int, path: Path) -> SchemaVersion:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"schema {path} is not valid JSON: {exc}") from exc
    try:
        parse_schema(json.loads(json.dumps(definition)))
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"schema {path} is not a valid Avro schema: {exc}") from exc
    if not isinstance(definition, dict) or definition.get("type") != "record":
        raise SchemaError(f"schema {path} must be an Avro record")
    canonical, digest = fingerprint_of(definition)
    return SchemaVersion(
        subject=subject, version=version, path=path, definition=definition, canonical_form=canonical, fingerprint=digest
    )


class SchemaStore:
    """All versions of all subjects under one root, read once."""

    def __init__(self, root: Path = SCHEMAS_ROOT) -> None:
        self.root = root
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        if not root.is_dir():
            raise SchemaError(f"schema folder {root} does not exist")
        for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            files = {}
            for path in subject_dir.glob("*.avsc"):
                match = _VERSION_FILE.match(path.name)
                if match is None:
                    raise SchemaError(f"{path}: schema files must be named v<N>.avsc (v1.avsc, v2.avsc, ...)")
                files[int(match["version"])] = path
            if not files:
                continue
            if sorted(files) != list(range(1, len(files) + 1)):
                raise SchemaError(f"{subject_dir}: versions must run 1..N without gaps, found {sorted(files)}")
            subject = subject_dir.name
            self._versions[subject] = [load_version(subject, v, files[v]) for v in sorted(files)]
            for schema in self._versions[subject]:
                # The same schema text in two subjects gives one fingerprint: either entry decodes it.
                self._by_fingerprint.setdefault(schema.fingerprint, schema)

    def subjects(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, subject: str) -> list[SchemaVersion]:
        """Every version of ``subject``, oldest first."""
        try:
            return list(self._versions[subject])
        except KeyError:
            known = ", ".join(self.subjects()) or "none"
            raise SchemaError(f"no schema subject {subject!r} under {self.root} (known: {known})") from None

    def latest(self, subject: str) -> SchemaVersion:
        """The current schema of ``subject``: what writers use and what readers resolve to."""
        return self.versions(subject)[-1]

    def version(self, subject: str, version: int) -> SchemaVersion:
        versions = self.versions(subject)
        if not 1 <= version <= len(versions):
            raise SchemaError(f"subject {subject!r} has versions 1..{len(versions)}, not {version}")
        return versions[version - 1]

    def by_fingerprint(self, digest: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(digest)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for subject in self.subjects():
            yield from self._versions[subject]


@lru_cache(maxsize=8)
def load_store(root: Path = SCHEMAS_ROOT) -> SchemaStore:
    """The store for ``root``, read once per process (schema files do not change while a job runs)."""
    return SchemaStore(root)
