"""Avro serialisation of Kafka values: registry-less single-object encoding or Confluent's wire format.

The streaming job decodes with :class:`RecordDecoder` (``decode_batch`` in ``mapInArrow``); producers
encode with :func:`make_encoder`. Undecodable input is a :class:`DecodeError` with a ``kind``, never a crash.
"""

from pipelines.serde.decoder import DecodedBatch, RecordDecoder
from pipelines.serde.encoder import ConfluentEncoder, Encoder, SingleObjectEncoder, make_encoder
from pipelines.serde.errors import DECODE_ERROR_KINDS, DecodeError, DecodeErrorKind, EncodeError

__all__ = [
    "DECODE_ERROR_KINDS",
    "ConfluentEncoder",
    "DecodeError",
    "DecodeErrorKind",
    "DecodedBatch",
    "EncodeError",
    "Encoder",
    "RecordDecoder",
    "SingleObjectEncoder",
    "make_encoder",
]
