"""Bad records, injected on purpose so that the pipeline's dead-letter path is exercised by every run.

Two families, each kind named as the producer's summary counts it:

- undecodable (the decoder returns a typed ``DecodeError``): ``garbage_bytes`` (random bytes, no framing),
  ``truncated_avro`` (a valid encoding cut short), ``unknown_schema_fingerprint`` (a valid body behind a
  fingerprint / registry id no reader knows), ``wrong_field_types`` (the header names the real schema but the
  body was written by a producer that sent ``channel`` and ``event_time`` as strings), and
  ``null_required_fields`` (the header names the real schema but the body was written with every field
  nullable and the ids null);
- decodable but invalid (the expectation suite rejects them): ``negative_amount`` (amount < 0),
  ``absurd_amount`` (amount > 50,000), ``unknown_currency`` (not ISO 4217), ``unknown_country`` (not
  ISO 3166-1 alpha-2) and ``future_event_time`` (30 days after the generator's "now").

The two "lying header" kinds fail deterministically: the wrong-types body puts a string length (>= 6) where
the enum index (0..2) is read; the all-nullable body shifts every field by its union index, so the reader
meets a negative or overlong length by the ``country`` field at the latest. A unit test checks both over
arbitrary valid records.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from pipelines.generator.columns import TransactionColumns
from pipelines.schemas.store import SchemaVersion
from pipelines.serde.codec import encode_body, parse_logical, parse_raw
from pipelines.serde.encoder import Encoder

UNDECODABLE_KINDS = (
    "garbage_bytes",
    "truncated_avro",
    "unknown_schema_fingerprint",
    "wrong_field_types",
    "null_required_fields",
)
INVALID_KINDS = ("negative_amount", "absurd_amount", "unknown_currency", "unknown_country", "future_event_time")
BAD_KINDS = UNDECODABLE_KINDS + INVALID_KINDS

# User-assigned / unassigned codes: never in schemas/reference/*.txt (a unit test checks).
UNKNOWN_CURRENCIES = ("XXQ", "QQQ", "ZZY")
UNKNOWN_COUNTRIES = ("ZZ", "QQ", "XZ")
FUTURE_OFFSET_MS = 30 * 24 * 3_600_000
_CHANNEL_WORDS = {"POS": "card_present", "ECOM": "online", "ATM": "cash_machine"}
_KNOWN_MAGIC = (0xC3, 0x00)


def mark_bad_rows(rng: np.random.Generator, chunk: TransactionColumns, fraction: float, kinds: tuple[str, ...]) -> None:
    """Choose ``fraction`` of the legitimate rows to become bad, each of a kind drawn uniformly from ``kinds``."""
    if fraction <= 0 or not kinds:
        return
    chosen = (rng.random(len(chunk)) < fraction) & (chunk.fraud == 0)
    chunk.bad_kind[chosen] = rng.integers(0, len(kinds), int(chosen.sum()), dtype=np.int8)


def apply_invalid_values(
    rng: np.random.Generator, chunk: TransactionColumns, kinds: tuple[str, ...], now_ms: int
) -> None:
    """Give rows marked with a decodable-but-invalid kind their invalid value (arrays changed in place)."""
    for code, kind in enumerate(kinds):
        if kind not in INVALID_KINDS:
            continue
        rows = np.flatnonzero(chunk.bad_kind == code)
        if len(rows) == 0:
            continue
        if kind == "negative_amount":
            chunk.amount[rows] = -np.round(rng.uniform(0.01, 500.0, len(rows)), 2)
        elif kind == "absurd_amount":
            chunk.amount[rows] = np.round(rng.uniform(1e6, 1e8, len(rows)), 2)
        elif kind == "unknown_currency":
            chunk.currency[rows] = rng.choice(np.array(UNKNOWN_CURRENCIES, dtype=object), len(rows))
        elif kind == "unknown_country":
            chunk.country[rows] = rng.choice(np.array(UNKNOWN_COUNTRIES, dtype=object), len(rows))
        elif kind == "future_event_time":
            chunk.event_time[rows] = np.maximum(chunk.event_time[rows], now_ms) + FUTURE_OFFSET_MS


@lru_cache(maxsize=16)
def _wrong_types_schema(schema: SchemaVersion) -> dict[str, Any]:
    definition = copy.deepcopy(dict(schema.definition))
    for field in definition["fields"]:
        if field["name"] in ("channel", "event_time"):
            field["type"] = "string"
    return parse_raw(definition)


@lru_cache(maxsize=16)
def _all_nullable_schema(schema: SchemaVersion) -> dict[str, Any]:
    definition = copy.deepcopy(dict(schema.definition))
    for field in definition["fields"]:
        if not (isinstance(field["type"], list) and "null" in field["type"]):
            field["type"] = ["null", field["type"]]
    return parse_logical(definition)


def undecodable_payload(kind: str, record: Mapping[str, Any], encoder: Encoder, rng: np.random.Generator) -> bytes:
    """The Kafka value of an undecodable bad record of ``kind``, made from a valid ``record``."""
    if kind == "garbage_bytes":
        garbage = rng.bytes(int(rng.integers(1, 200)))
        if garbage[0] in _KNOWN_MAGIC:
            garbage = b"{" + garbage[1:]  # as if someone produced JSON to the topic
        return garbage
    if kind == "truncated_avro":
        payload = encoder.encode(record)
        return payload[: int(rng.integers(1, len(payload)))]
    if kind == "unknown_schema_fingerprint":
        body = encode_body(parse_logical(encoder.schema.definition), record)
        return encoder.unknown_schema_frame(body, int(rng.integers(0, 2**63)))
    if kind == "wrong_field_types":
        wrong = dict(record)
        wrong["channel"] = _CHANNEL_WORDS.get(str(record["channel"]), "online")
        wrong["event_time"] = datetime.fromtimestamp(int(record["event_time"]) / 1000, UTC).isoformat()
        return encoder.frame(encode_body(_wrong_types_schema(encoder.schema), wrong))
    if kind == "null_required_fields":
        nulled = dict(record, event_id=None, card_id=None, merchant_id=None)
        if "device_id" in nulled:
            nulled["device_id"] = None
        return encoder.frame(encode_body(_all_nullable_schema(encoder.schema), nulled))
    raise ValueError(f"{kind!r} is not an undecodable bad-record kind (those are {', '.join(UNDECODABLE_KINDS)})")
