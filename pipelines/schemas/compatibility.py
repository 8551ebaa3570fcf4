"""Is a new schema version compatible with the one before it? Decided by Apache Avro's own checker.

``avro.compatibility.ReaderWriterCompatibilityChecker`` (the Python port of Java's ``SchemaCompatibility``)
applies the spec's schema-resolution rules: record fields matched by name, a reader field missing from the
writer needs a default, enum symbols, union branches, numeric promotions (int -> long -> float -> double,
string <-> bytes). The modes mean what they mean in Confluent Schema Registry:

- BACKWARD: the new schema can read data written with the previous one (upgrade consumers first);
- FORWARD: the previous schema can read data written with the new one (upgrade producers first);
- FULL: both; NONE: no check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from pipelines.schemas.store import SchemaVersion


class CompatibilityMode(StrEnum):
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"
    NONE = "NONE"


@dataclass(frozen=True)
class CompatibilityReport:
    """The verdict for one version against its predecessor."""

    subject: str
    version: int
    previous: int | None
    mode: CompatibilityMode
    problems: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        return not self.problems


def _can_read(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[str]:
    """Problems a reader with schema ``reader`` has with data written with ``writer`` (empty: none)."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({kind.value for kind in result.incompatibilities})) or "incompatible"
    where = ", ".join(sorted(loc for loc in result.locations if loc != "/")) or "/"
    details = "; ".join(sorted(result.messages))
    return [f"{kinds} at {where}: {details}"]


def schema_problems(new: Mapping[str, Any], previous: Mapping[str, Any], mode: CompatibilityMode) -> list[str]:
    """Why ``new`` may not follow ``previous`` under ``mode``; an empty list means it may."""
    problems: list[str] = []
    if mode in (CompatibilityMode.BACKWARD, CompatibilityMode.FULL):
        problems += [f"new schema cannot read old data ({p})" for p in _can_read(new, previous)]
    if mode in (CompatibilityMode.FORWARD, CompatibilityMode.FULL):
        problems += [f"old schema cannot read new data ({p})" for p in _can_read(previous, new)]
    return problems


def check_history(versions: Sequence[SchemaVersion], mode: CompatibilityMode) -> list[CompatibilityReport]:
    """Each version against the one before it (v1 has nothing to be checked against)."""
    reports = []
    for index, current in enumerate(versions):
        previous = versions[index - 1] if index else None
        problems = (
            schema_problems(current.definition, previous.definition, mode)
            if previous is not None and mode is not CompatibilityMode.NONE
            else []
        )
        reports.append(
            CompatibilityReport(
                subject=current.subject,
                version=current.version,
                previous=previous.version if previous else None,
                mode=mode,
                problems=tuple(problems),
            )
        )
    return reports
