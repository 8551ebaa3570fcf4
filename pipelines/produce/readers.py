"""Records from files, checked against a subject's schema before anything is produced.

JSON Lines (``.jsonl``/``.ndjson``/``.json``), Parquet (``.parquet``/``.pq``) and Avro object container files
(``.avro``) are recognised by suffix, else by their first bytes. The file must match the schema: an Avro
file's writer schema must be readable with the subject's current schema (Avro resolution rules, the same
check as `featurestream schemas check`); Parquet columns and JSON keys must be the schema's fields, every
field without a default present. Values are converted where the text formats cannot carry the Avro type:
ISO 8601 strings for ``timestamp-millis`` fields, base64 strings for ``bytes`` fields.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import fastavro

from pipelines.errors import FeaturestreamError
from pipelines.schemas.compatibility import CompatibilityMode, schema_problems
from pipelines.schemas.store import SchemaVersion
from pipelines.serde.codec import parse_logical

FileFormat = Literal["jsonl", "parquet", "avro"]
_SUFFIXES: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".avro": "avro",
}
BATCH_SIZE = 5_000


class FileSchemaMismatchError(FeaturestreamError):
    """The file's records or schema do not match the topic's Avro schema."""


class UnreadableFileError(FeaturestreamError):
    """The file is missing, or not JSON Lines, Parquet or Avro."""


def detect_format(path: Path) -> FileFormat:
    known = _SUFFIXES.get(path.suffix.lower())
    if known is not None:
        return known
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read {path}: {exc.strerror}") from exc
    if head == b"Obj\x01":
        return "avro"
    if head == b"PAR1":
        return "parquet"
    if head[:1] in (b"{", b" ", b"\n"):
        return "jsonl"
    raise UnreadableFileError(f"{path} is not JSON Lines, Parquet or an Avro container file")


def _field_type(field: Mapping[str, Any]) -> tuple[Any, bool]:
    """The field's non-null type and whether null is allowed."""
    field_type = field["type"]
    if isinstance(field_type, list):
        others = [t for t in field_type if t != "null"]
        return (others[0] if len(others) == 1 else field_type), "null" in field_type
    return field_type, False


def _converter(field: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    field_type, _ = _field_type(field)
    if isinstance(field_type, Mapping) and field_type.get("logicalType") == "timestamp-millis":
        return _to_timestamp
    if field_type == "bytes":
        return _to_bytes
    return None


def _to_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # Parquet timestamps without a zone are UTC here
    return value


def _to_bytes(value: Any) -> Any:
    return base64.b64decode(value) if isinstance(value, str) else value


def check_columns(columns: list[str], schema: SchemaVersion, source: str) -> None:
    """The columns/keys must be the schema's fields; every field without a default must be there."""
    fields = schema.definition["fields"]
    names = {f["name"] for f in fields}
    required = {f["name"] for f in fields if "default" not in f}
    extra = sorted(set(columns) - names)
    missing = sorted(required - set(columns))
    if extra or missing:
        parts = []
        if missing:
            parts.append(f"missing required field(s) {', '.join(missing)}")
        if extra:
            parts.append(f"field(s) not in the schema: {', '.join(extra)}")
        raise FileSchemaMismatchError(
            f"{source} does not match schema {schema.subject} v{schema.version}: {'; '.join(parts)}"
        )


def open_records(path: Path, schema: SchemaVersion) -> Iterator[list[dict[str, Any]]]:
    """Batches of records from ``path``. The file is checked against ``schema`` here, before anything is
    returned, so a mismatching file fails before a single record is produced."""
    if not path.is_file():
        raise UnreadableFileError(f"{path} does not exist or is not a file")
    file_format = detect_format(path)
    converters = {f["name"]: c for f in schema.definition["fields"] if (c := _converter(f)) is not None}
    if file_format == "avro":
        batches = _avro_batches(path, schema)
    elif file_format == "parquet":
        batches = _parquet_batches(path, schema)
    else:
        batches = _jsonl_batches(path, schema)
    first = next(batches, None)  # runs the format's up-front checks now
    if first is None:
        return iter(())
    return _converted(_chain(first, batches), converters)


def _chain(first: list[dict[str, Any]], rest: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    yield first
    yield from rest


def _converted(
    batches: Iterator[list[dict[str, Any]]], converters: Mapping[str, Callable[[Any], Any]]
) -> Iterator[list[dict[str, Any]]]:
    for batch in batches:
        if converters:
            for record in batch:
                for name, convert in converters.items():
                    if record.get(name) is not None:
                        record[name] = convert(record[name])
        yield batch


def _avro_batches(path: Path, schema: SchemaVersion) -> Iterator[list[dict[str, Any]]]:
    with path.open("rb") as handle:
        try:
            reader = fastavro.reader(handle)
        except ValueError as exc:
            raise UnreadableFileError(f"{path} is not an Avro container file: {exc}") from exc
        writer_schema = reader.writer_schema
        if not isinstance(writer_schema, Mapping):
            raise FileSchemaMismatchError(f"{path} holds {writer_schema!r} values, not {schema.full_name} records")
        problems = schema_problems(schema.definition, writer_schema, CompatibilityMode.BACKWARD)
        if problems:
            raise FileSchemaMismatchError(
                f"{path}'s schema cannot be read as {schema.subject} v{schema.version}: {'; '.join(problems)}"
            )
        handle.seek(0)
        resolved = fastavro.reader(handle, reader_schema=parse_logical(schema.definition))
        batch: list[dict[str, Any]] = []
        for record in resolved:
            batch.append(record)  # type: ignore[arg-type]
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if batch:
            yield batch


def _parquet_batches(path: Path, schema: SchemaVersion) -> Iterator[list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends for non-Parquet input
        raise UnreadableFileError(f"{path} is not a Parquet file: {exc}") from exc
    check_columns(parquet.schema_arrow.names, schema, str(path))
    for batch in parquet.iter_batches(batch_size=BATCH_SIZE):
        yield batch.to_pylist()


def _jsonl_batches(path: Path, schema: SchemaVersion) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    checked = False
    with path.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FileSchemaMismatchError(f"{path}:{line_number} is not JSON: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise FileSchemaMismatchError(f"{path}:{line_number} is not a JSON object")
            if not checked:
                check_columns(list(record), schema, f"{path}:{line_number}")
                checked = True
            batch.append(record)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch
