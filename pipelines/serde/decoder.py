"""Decode Kafka values of one subject, whichever wire format wrote them, to plain dicts.

The format is told by the first bytes: ``C3 01`` is Avro single-object encoding (writer schema found by
fingerprint among every version in ``schemas/``), ``00`` is Confluent's framing (writer schema fetched by id
from the Schema Registry), anything else is garbage. Every record is resolved to the subject's current
(highest-version) schema, so a v1 record gains v2's new fields with their defaults.

Decoded records hold Avro base types: ``string`` -> ``str``, ``double`` -> ``float``, ``boolean`` ->
``bool``, ``enum`` -> ``str`` (the symbol), ``["null", T]`` -> ``T | None``, ``bytes`` -> ``bytes``, and
``timestamp-millis`` -> ``int`` epoch milliseconds UTC (not ``datetime``: cheaper, and what an Arrow
``timestamp("ms", tz="UTC")`` column is built from without a per-row conversion).

Built for Spark's ``mapInArrow``/``mapInPandas``: a decoder is picklable (schemas are parsed once, in the
constructor, and travel with it), and :meth:`RecordDecoder.decode_batch` never raises for bad input: it
returns a record or a :class:`~pipelines.serde.errors.DecodeError` for every value, in input order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pipelines.config import Settings
from pipelines.schemas.store import SchemaStore, load_store
from pipelines.serde import confluent, single_object
from pipelines.serde.codec import decode_body, parse_raw
from pipelines.serde.confluent import ConfluentRegistry
from pipelines.serde.errors import DecodeError


class DecodedBatch(NamedTuple):
    """Per input value, in order: the record (``None`` where it failed) and the error (``None`` where it worked).

    Exactly one of ``records[i]`` and ``errors[i]`` is set, so ``len(ok) + len(failed) == len(values)``.
    """

    records: list[dict[str, Any] | None]
    errors: list[DecodeError | None]


class RecordDecoder:
    """Decodes one subject's values to records of its current schema."""

    def __init__(
        self,
        subject: str,
        *,
        store: SchemaStore | None = None,
        registry: ConfluentRegistry | None = None,
        reader_version: int | None = None,
    ) -> None:
        """``reader_version`` pins the reader schema (a consumer not yet upgraded); default: the current one."""
        store = store or load_store()
        current = store.latest(subject) if reader_version is None else store.version(subject, reader_version)
        self.subject = subject
        self.reader_version = current.version
        self.field_names: tuple[str, ...] = tuple(field["name"] for field in current.definition["fields"])
        self._reader = parse_raw(current.definition)
        # Every schema in the store, not only this subject's: a record of another subject written to this
        # topic is then reported as a schema mismatch naming what it is, not as an unknown fingerprint.
        self._writers: dict[bytes, tuple[dict[str, Any], str]] = {
            version.fingerprint: (
                self._as_writer(parse_raw(version.definition)),
                f"{version.subject} v{version.version}",
            )
            for version in store
        }
        self._registry = registry
        self._registry_writers: dict[int, dict[str, Any]] = {}

    def _as_writer(self, parsed: dict[str, Any]) -> dict[str, Any]:
        """The reader schema object itself when the writer schema equals it.

        fastavro compares the writer and reader schemas on every record it reads; two equal but distinct dicts
        cost a deep comparison each time (measured: 4.3 -> 3.2 µs per transaction record with one object).
        """
        return self._reader if parsed == self._reader else parsed

    def _registry_writer(self, schema_id: int) -> dict[str, Any]:
        assert self._registry is not None
        writer = self._registry_writers.get(schema_id)
        if writer is None:
            writer = self._registry_writers[schema_id] = self._as_writer(self._registry.writer_schema(schema_id))
        return writer

    @classmethod
    def from_settings(cls, subject: str, settings: Settings, *, store: SchemaStore | None = None) -> RecordDecoder:
        return cls(subject, store=store, registry=ConfluentRegistry.from_settings(settings.serde))

    def decode(self, payload: bytes | bytearray | memoryview | None) -> dict[str, Any]:
        """One value to a record; raises :class:`DecodeError` (only) if it cannot be decoded."""
        if payload is None:
            raise DecodeError("empty", "the value is null")
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        if not payload:
            raise DecodeError("empty", "the value has zero bytes")
        if payload[:2] == single_object.MARKER:
            fingerprint = single_object.split(payload)
            writer = self._writers.get(fingerprint)
            if writer is None:
                raise DecodeError(
                    "unknown_schema",
                    f"no schema in schemas/ has fingerprint {fingerprint.hex()} (CRC-64-AVRO, little-endian)",
                )
            return decode_body(payload, single_object.HEADER_SIZE, writer[0], self._reader, writer[1])
        if payload[:1] == confluent.MAGIC:
            schema_id = confluent.split(payload)
            if self._registry is None:
                raise DecodeError(
                    "unknown_schema",
                    f"Confluent-framed value (schema id {schema_id}) but no serde.schema_registry_url is configured",
                )
            return decode_body(
                payload,
                confluent.HEADER_SIZE,
                self._registry_writer(schema_id),
                self._reader,
                f"registry schema id {schema_id}",
            )
        if payload == single_object.MARKER[:1]:
            raise DecodeError("truncated", "the value is the first byte of the single-object marker only")
        raise DecodeError(
            "garbage",
            f"starts with 0x{payload[:2].hex()}: neither the Avro single-object marker 0xc301 "
            "nor Confluent's magic byte 0x00",
        )

    def decode_batch(self, values: Iterable[bytes | bytearray | memoryview | None]) -> DecodedBatch:
        """Many values at once; bad ones yield their error in place, so nothing is dropped or raised."""
        records: list[dict[str, Any] | None] = []
        errors: list[DecodeError | None] = []
        decode, add_record, add_error = self.decode, records.append, errors.append
        for value in values:
            try:
                add_record(decode(value))
                add_error(None)
            except DecodeError as exc:
                add_record(None)
                add_error(exc)
        return DecodedBatch(records, errors)

    def try_decode(self, payload: bytes | bytearray | memoryview | None) -> dict[str, Any] | DecodeError:
        """The record, or the error as a value (for code that routes rather than raises)."""
        try:
            return self.decode(payload)
        except DecodeError as exc:
            return exc
