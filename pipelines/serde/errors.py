"""Typed failures of encoding and decoding: bad input is data with a kind and a reason, never a crash.

A Spark job turns a :class:`DecodeError` into a dead-letter record (``reason = "decode:" + kind``), so the
kinds are a small closed set a dashboard can group by.
"""

from __future__ import annotations

from typing import Literal, get_args

from pipelines.errors import FeaturestreamError

DecodeErrorKind = Literal["empty", "garbage", "truncated", "unknown_schema", "schema_mismatch"]
DECODE_ERROR_KINDS: tuple[str, ...] = get_args(DecodeErrorKind)


class DecodeError(FeaturestreamError):
    """A Kafka value that cannot be decoded.

    ``kind`` is one of:

    - ``empty``: a null or zero-length value;
    - ``garbage``: no known framing (neither the Avro single-object marker nor Confluent's magic byte);
    - ``truncated``: the framing or the Avro body ends before the writer schema's fields do;
    - ``unknown_schema``: the writer schema's fingerprint (or registry id) is not known;
    - ``schema_mismatch``: the body does not decode with the schema it names (wrong field types, bad enum or
      union index, invalid UTF-8, trailing bytes), or that schema cannot be resolved to the reader schema.
    """

    def __init__(self, kind: DecodeErrorKind, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind: DecodeErrorKind = kind
        self.reason = reason

    def __reduce__(self) -> tuple[type[DecodeError], tuple[DecodeErrorKind, str]]:
        # Spark ships errors from executors with pickle; the default would call __init__ with the message only.
        return (type(self), (self.kind, self.reason))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecodeError) and (self.kind, self.reason) == (other.kind, other.reason)

    def __hash__(self) -> int:
        return hash((self.kind, self.reason))


class EncodeError(FeaturestreamError):
    """A record that does not fit the schema it is written with (a missing field, a value of the wrong type)."""
