"""Confluent's wire format (magic byte ``0`` + 4-byte big-endian schema id + Avro body) with a Schema Registry.

Writing goes through confluent-kafka's ``AvroSerializer`` (which registers the schema under the subject
``<topic>-value``, TopicNameStrategy) and ``SchemaRegistryClient``. Reading takes the writer schema from the
same client by id (the client caches it) and decodes the body with the same fastavro code as the
registry-less format, instead of ``AvroDeserializer``: that gives the same typed errors for both formats
(``AvroDeserializer`` reports a truncated body as an ``IndexError``), the same epoch-millisecond timestamps
(it returns ``datetime``), and a check for trailing bytes. A unit test proves both directions interoperate
with confluent-kafka's own serializer and deserializer.

A ``mock://`` URL gives confluent-kafka's in-memory registry (used by the unit tests; no server needed).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import SecretStr

from pipelines.config import SerdeSettings
from pipelines.errors import FeaturestreamError
from pipelines.schemas.store import SchemaVersion
from pipelines.serde.codec import parse_raw
from pipelines.serde.errors import DecodeError, EncodeError

if TYPE_CHECKING:  # confluent-kafka's schema-registry extras are imported only when a registry is used
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer

MAGIC = b"\x00"
HEADER_SIZE = 5
_SCHEMA_NOT_FOUND = {40403, 40400}


class SchemaRegistryUnavailableError(FeaturestreamError):
    """The Schema Registry could not be asked (down, unauthorised): not the record's fault, so not a DecodeError."""


def header(schema_id: int) -> bytes:
    return MAGIC + schema_id.to_bytes(4, "big")


def split(payload: bytes) -> int:
    """The schema id of a Confluent-framed payload (whose magic byte the caller has checked)."""
    if len(payload) < HEADER_SIZE:
        raise DecodeError("truncated", f"Confluent header needs {HEADER_SIZE} bytes, the value has only {len(payload)}")
    return int.from_bytes(payload[1:HEADER_SIZE], "big")


class ConfluentRegistry:
    """Access to one Schema Registry, connected lazily so that decoders holding it can be pickled to executors.

    The client is rebuilt after unpickling from the URL and credentials; a ``mock://`` registry's contents
    live in its client and therefore do not travel.
    """

    def __init__(
        self, url: str, basic_auth_user_info: SecretStr | None = None, *, client: SchemaRegistryClient | None = None
    ) -> None:
        self.url = url
        self._basic_auth = basic_auth_user_info
        self._client = client
        self._writer_schemas: dict[int, dict[str, Any]] = {}
        self._schema_ids: dict[tuple[str, str], int] = {}

    @classmethod
    def from_settings(cls, serde: SerdeSettings) -> ConfluentRegistry | None:
        if not serde.schema_registry_url:
            return None
        return cls(serde.schema_registry_url, serde.basic_auth_user_info)

    @property
    def client(self) -> SchemaRegistryClient:
        if self._client is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            conf: dict[str, Any] = {"url": self.url}
            if self._basic_auth is not None:
                conf["basic.auth.user.info"] = self._basic_auth.get_secret_value()
            self._client = SchemaRegistryClient.new_client(conf)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        return state

    @staticmethod
    def subject_for(topic: str) -> str:
        """The registry subject of a topic's values (TopicNameStrategy)."""
        return f"{topic}-value"

    def serializer(self, schema: SchemaVersion, topic: str) -> AvroSerializer:
        from confluent_kafka.schema_registry import topic_subject_name_strategy
        from confluent_kafka.schema_registry.avro import AvroSerializer

        return AvroSerializer(
            self.client,
            schema.json(),
            conf={"auto.register.schemas": True, "subject.name.strategy": topic_subject_name_strategy},
        )

    def schema_id(self, schema: SchemaVersion, topic: str) -> int:
        """The id the registry gives ``schema`` under the topic's subject (registering it if needed)."""
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        key = (topic, schema.json())
        if key not in self._schema_ids:
            try:
                self._schema_ids[key] = int(
                    self.client.register_schema(self.subject_for(topic), Schema(schema.json(), "AVRO"))
                )
            except SchemaRegistryError as exc:
                raise EncodeError(f"cannot register schema for {self.subject_for(topic)}: {exc}") from exc
        return self._schema_ids[key]

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """The parsed (logical types removed) writer schema with this id; unknown ids are a DecodeError."""
        parsed = self._writer_schemas.get(schema_id)
        if parsed is not None:
            return parsed
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code in _SCHEMA_NOT_FOUND or exc.http_status_code == 404:
                raise DecodeError("unknown_schema", f"schema id {schema_id} is not in the registry") from None
            raise SchemaRegistryUnavailableError(f"schema registry {self.url} failed: {exc}") from exc
        except Exception as exc:  # connection errors surface as httpx/OS errors
            raise SchemaRegistryUnavailableError(f"cannot reach schema registry {self.url}: {exc}") from exc
        if registered.schema_str is None:
            raise DecodeError("unknown_schema", f"the registry has no schema text for id {schema_id}")
        parsed = parse_raw(json.loads(registered.schema_str))
        self._writer_schemas[schema_id] = parsed
        return parsed


def serialization_context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)
