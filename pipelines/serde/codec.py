"""Avro bodies with fastavro, and the translation of fastavro's exceptions into typed decode errors.

Decoding uses schemas with their logical-type annotations removed, so ``timestamp-millis`` fields come back
as the epoch-millisecond ``int`` that was written (cheap, timezone-free, and what Arrow/Spark vectorise),
never as a ``datetime``. Removing annotations changes no byte on the wire: logical types only describe how
to interpret a base type, and the fingerprint (Parsing Canonical Form) ignores them.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Mapping
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from pipelines.serde.errors import DecodeError, DecodeErrorKind, EncodeError

_NEGATIVE_LENGTH = re.compile(r"Expected -\d+ bytes")


def strip_logical_types(schema: Any) -> Any:
    """A copy of a schema definition without ``logicalType`` annotations (records read as Avro base types)."""
    if isinstance(schema, Mapping):
        return {key: strip_logical_types(value) for key, value in schema.items() if key != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(item) for item in schema]
    return schema


def parse_raw(definition: Mapping[str, Any]) -> dict[str, Any]:
    """fastavro-parsed schema without logical types (see module docstring)."""
    return cast(dict[str, Any], parse_schema(strip_logical_types(definition)))


def parse_logical(definition: Mapping[str, Any]) -> dict[str, Any]:
    """fastavro-parsed schema with logical types: writers then accept ``datetime`` as well as epoch millis."""
    return cast(dict[str, Any], parse_schema(copy.deepcopy(dict(definition))))


def encode_body(parsed_schema: dict[str, Any], record: Mapping[str, Any]) -> bytes:
    """The Avro binary encoding of one record (no framing)."""
    buffer = io.BytesIO()
    try:
        schemaless_writer(buffer, parsed_schema, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise EncodeError(f"record does not fit schema {parsed_schema.get('name')}: {exc}") from exc
    return buffer.getvalue()


def classify(exc: BaseException, exhausted: bool = False) -> tuple[DecodeErrorKind, str]:
    """A decode error kind and reason for an exception raised by fastavro while reading a body.

    ``exhausted`` says the reader had consumed every byte when it failed: fastavro reports a number cut off
    at the end as an ``IndexError``, the same type as an enum index out of range, so the position decides.
    """
    if isinstance(exc, EOFError):
        if _NEGATIVE_LENGTH.search(str(exc)):
            return "schema_mismatch", f"a length in the body is negative ({exc}): not written with this schema"
        return "truncated", f"the body ends before the schema's fields do ({exc or 'end of data'})"
    if isinstance(exc, SchemaResolutionError):
        return "schema_mismatch", f"the writer schema cannot be resolved to the reader schema: {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return "schema_mismatch", f"a string field holds invalid UTF-8 ({exc.reason} at byte {exc.start})"
    if isinstance(exc, IndexError):
        if exhausted:
            return "truncated", "the body ends in the middle of a number"
        return "schema_mismatch", "an enum or union index is out of range: the body was not written with this schema"
    if isinstance(exc, (OverflowError, MemoryError)):
        return "schema_mismatch", f"a length or number in the body is out of range ({type(exc).__name__})"
    return "schema_mismatch", f"the body does not decode with its writer schema ({type(exc).__name__}: {exc})"


def decode_body(
    payload: bytes, offset: int, writer: dict[str, Any], reader: dict[str, Any], writer_label: str
) -> dict[str, Any]:
    """Read the body at ``payload[offset:]``; every failure becomes a :class:`DecodeError`."""
    stream = io.BytesIO(payload)
    stream.seek(offset)
    try:
        record = schemaless_reader(stream, writer, reader)
    except Exception as exc:  # fastavro raises many types on corrupt input; each is classified, none escapes
        kind, reason = classify(exc, exhausted=stream.tell() >= len(payload))
        raise DecodeError(kind, f"{reason} [writer {writer_label}]") from None
    trailing = len(payload) - stream.tell()
    if trailing:
        raise DecodeError(
            "schema_mismatch",
            f"{trailing} bytes left after the record: the body was not written with {writer_label}",
        )
    if not isinstance(record, dict):
        raise DecodeError("schema_mismatch", f"{writer_label} did not decode to a record")
    return record
