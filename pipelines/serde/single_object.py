"""Avro single-object encoding (Avro spec): ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + body.

The registry-less wire format: each record names its writer schema by fingerprint, so readers resolve old
versions to the current one without a Schema Registry. Pure byte handling; no schema knowledge here.
"""

from __future__ import annotations

from pipelines.serde.errors import DecodeError

MARKER = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MARKER) + FINGERPRINT_SIZE


def header(fingerprint: bytes) -> bytes:
    if len(fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"a CRC-64-AVRO fingerprint has {FINGERPRINT_SIZE} bytes, got {len(fingerprint)}")
    return MARKER + fingerprint


def split(payload: bytes) -> bytes:
    """The fingerprint of a single-object payload (whose marker the caller has checked); the body starts at 10."""
    if len(payload) < HEADER_SIZE:
        raise DecodeError(
            "truncated", f"single-object header needs {HEADER_SIZE} bytes, the value has only {len(payload)}"
        )
    return payload[len(MARKER) : HEADER_SIZE]
