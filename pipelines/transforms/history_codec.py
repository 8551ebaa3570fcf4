"""An :class:`EntityHistory` to bytes and back: the value a state bucket keeps in Spark's state store.

Every byte of that value moves several times per micro-batch (state store -> JVM pickler -> Python and back,
then into RocksDB), and every bucket is rewritten each batch, so its size per held event is what the stateful
stage's cost grows with. One Arrow IPC stream holds the history: times and numbers as plain 8-byte columns,
entity ids and categories dictionary-encoded (each distinct string once per bucket, a 4-byte code per event)
instead of the separator-joined strings of the first format (about 45 bytes per card event, two thirds of it
text the JVM re-encoded to UTF-16 and back). No separator is reserved, any string survives, nulls included.

The stream's schema metadata names the format, so a value written by another format is refused with a clear
error instead of being misread. It also records how many buckets the entities were hashed into
(``stream.state_buckets``): with another count an entity's events would land in a bucket that does not hold
its history, and its features would silently restart from nothing, so a changed count is refused too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.transforms.windows import EntityFeatureSet, EntityHistory

FORMAT_KEY = b"featurestream.entity_history"
FORMAT_VERSION = b"2"  # 1 was the separator-joined strings before this codec
BUCKETS_KEY = b"featurestream.state_buckets"
KEY_COLUMN = "entity_id"
TIME_COLUMN = "event_time_ms"
_NUMERIC_PREFIX = "num:"
_CATEGORY_PREFIX = "cat:"


class HistoryFormatError(ValueError):
    """A stored state value this code cannot read (another format version, or not a history at all)."""


def encode_history(history: EntityHistory, *, state_buckets: int) -> bytes:
    """The history as one Arrow IPC stream (a single record batch); ``state_buckets`` is the bucket count the
    job hashes entities into."""
    columns: dict[str, pa.Array] = {
        KEY_COLUMN: _dictionary_encoded(history.keys),
        TIME_COLUMN: pa.array(np.asarray(history.times_ms, dtype=np.int64), type=pa.int64()),
    }
    for name, values in history.numeric.items():
        columns[_NUMERIC_PREFIX + name] = pa.array(np.asarray(values, dtype=np.float64), type=pa.float64())
    for name, values in history.categories.items():
        columns[_CATEGORY_PREFIX + name] = _dictionary_encoded(values)
    batch = pa.RecordBatch.from_pydict(
        columns, metadata={FORMAT_KEY: FORMAT_VERSION, BUCKETS_KEY: str(state_buckets).encode()}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def decode_history(data: bytes, features: EntityFeatureSet, *, state_buckets: int) -> EntityHistory:
    """The history :func:`encode_history` wrote, with the columns ``features`` reads, if it was written with the
    same bucket count."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except pa.ArrowInvalid as exc:
        raise HistoryFormatError(
            f"stored entity state is not an Arrow stream ({exc}): written by an older featurestream? "
            "start the stream from a new checkpoint"
        ) from exc
    metadata = table.schema.metadata or {}
    version = metadata.get(FORMAT_KEY)
    if version != FORMAT_VERSION:
        raise HistoryFormatError(
            f"stored entity state has format {version!r}, this featurestream reads {FORMAT_VERSION!r}: "
            "start the stream from a new checkpoint"
        )
    stored_buckets = metadata.get(BUCKETS_KEY, b"?").decode()
    if stored_buckets != str(state_buckets):
        raise HistoryFormatError(
            f"the checkpoint's entity state was written with stream.state_buckets={stored_buckets}, the job now "
            f"has {state_buckets}: entities would be looked up in buckets that do not hold their history. Set "
            f"stream.state_buckets back to {stored_buckets}, or start the stream from a new checkpoint"
        )
    missing = [
        name
        for name in (
            *(_NUMERIC_PREFIX + c for c in features.numeric_columns),
            *(_CATEGORY_PREFIX + c for c in features.category_columns),
        )
        if name not in table.column_names
    ]
    if missing:
        raise HistoryFormatError(f"stored {features.entity} state lacks {missing}: start from a new checkpoint")
    return EntityHistory(
        keys=_strings(table.column(KEY_COLUMN)),
        times_ms=table.column(TIME_COLUMN).to_numpy().astype(np.int64, copy=False),
        numeric={
            c: table.column(_NUMERIC_PREFIX + c).to_numpy().astype(np.float64, copy=False)
            for c in features.numeric_columns
        },
        categories={c: _strings(table.column(_CATEGORY_PREFIX + c)) for c in features.category_columns},
    )


def _dictionary_encoded(values: np.ndarray) -> pa.DictionaryArray:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    indices = pa.array(codes, type=pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(uniques, type=pa.string()))


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """Object array of ``str`` (``None`` for nulls): each distinct string built once, then gathered by code."""
    out = np.empty(len(column), dtype=object)
    start = 0
    for chunk in column.chunks:
        dictionary = np.array([*chunk.dictionary.to_pylist(), None], dtype=object)
        codes = chunk.indices.fill_null(-1).to_numpy().astype(np.int64)
        out[start : start + len(chunk)] = dictionary[codes]  # -1 picks the appended None
        start += len(chunk)
    return out
