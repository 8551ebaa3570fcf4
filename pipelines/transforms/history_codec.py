"""An :class:`EntityHistory` to bytes and back: one chunk of a state bucket's history in Spark's state store.

A bucket keeps a list of chunks (:class:`~pipelines.streaming.entity_state.EntityHistoryProcessor`): a batch's
own events, or the whole pruned history when the list is compacted. The bytes move from RocksDB to Python
whenever a worker has to read the list instead of using its own copy, and the compacted chunk is rewritten
every few dozen batches, so the size per held event still counts. One Arrow IPC stream holds a chunk, its
buffers zstd-compressed:

- entity ids and categories dictionary-encoded: each distinct string once per bucket, a 2- or 4-byte code per
  event (the separator-joined strings of the first format cost about 45 bytes per card event, two thirds of it
  text the JVM re-encoded to UTF-16 and back);
- event times as steps: an entity's first event holds its time, each later one the milliseconds since the
  previous (events are in time order within an entity), so the bytes are small numbers that compress well;
- numbers with few decimal places (amounts in cents) as exact scaled integers, the places recorded in the field's
  metadata; any other number (more places, NaN, -0.0, beyond 2**53) stays a plain float64. Decoding divides by the
  same power of ten the encoder checked against, so every value comes back bit for bit.

Format 2 (absolute times, every number a float64) is still read, so a checkpoint written before format 3 keeps
its state. No separator is reserved, any string survives, nulls included. Decoding builds no Python string per
held event: the codes stay integers (:class:`~pipelines.transforms.windows.CodedStrings`), and only the batch's
own events are looked up.

The stream's schema metadata names the format, so a value written by another format is refused with a clear
error instead of being misread. It also records how many buckets the entities were hashed into
(``stream.state_buckets``): with another count an entity's events would land in a bucket that does not hold
its history, and its features would silently restart from nothing, so a changed count is refused too.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.transforms.windows import CodedStrings, EntityFeatureSet, EntityHistory

FORMAT_KEY = b"featurestream.entity_history"
FORMAT_VERSION = b"3"
READABLE_VERSIONS = (b"2", FORMAT_VERSION)
"""1 was the separator-joined strings; 2 held absolute times and every number as a float64."""
BUCKETS_KEY = b"featurestream.state_buckets"
PLACES_KEY = b"featurestream.decimal_places"
"""Field metadata of a number stored as a scaled integer: the value is the integer / 10 ** places."""
KEY_COLUMN = "entity_id"
TIME_STEP_COLUMN = "event_time_step_ms"
TIME_COLUMN = "event_time_ms"
"""Format 2's absolute event times."""
MAX_DECIMAL_PLACES = 4
_EXACT_INTEGERS = 2**53
_NUMERIC_PREFIX = "num:"
_CATEGORY_PREFIX = "cat:"


class HistoryFormatError(ValueError):
    """A stored state value this code cannot read (another format version, or not a history at all)."""


def encode_history(history: EntityHistory, *, state_buckets: int) -> bytes:
    """The history as one Arrow IPC stream (a single record batch); ``state_buckets`` is the bucket count the
    job hashes entities into."""
    keys = _dictionary_array(history.keys)
    fields = [pa.field(KEY_COLUMN, keys.type), pa.field(TIME_STEP_COLUMN, pa.int64())]
    arrays: list[pa.Array] = [keys, pa.array(time_steps(history.keys.run_starts(), history.times_ms), type=pa.int64())]
    for name, values in history.numeric.items():
        array, places = encode_numbers(np.asarray(values, dtype=np.float64))
        metadata = {PLACES_KEY: str(places).encode()} if places is not None else None
        fields.append(pa.field(_NUMERIC_PREFIX + name, array.type, metadata=metadata))
        arrays.append(array)
    for name, strings in history.categories.items():
        array = _dictionary_array(strings)
        fields.append(pa.field(_CATEGORY_PREFIX + name, array.type))
        arrays.append(array)
    schema = pa.schema(fields, metadata={FORMAT_KEY: FORMAT_VERSION, BUCKETS_KEY: str(state_buckets).encode()})
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
"""Buffers zstd-compressed (Arrow's default level): the JVM pickles the value to Python byte by byte (~20 ns a
byte measured, pyspark 4.0.0), so fewer bytes save far more than the compression costs (~23 ms of zstd for a
12 MB bucket). Higher levels made the buffers no smaller on generated traffic and took 1.3-3x as long. Streams
written uncompressed read back the same."""


def time_steps(run_starts: np.ndarray, times_ms: np.ndarray) -> np.ndarray:
    """Each entity's first time as is (``run_starts``, :meth:`CodedStrings.run_starts`), then the step from its
    previous event (never negative in a valid history)."""
    steps = np.empty(len(times_ms), dtype=np.int64)
    np.subtract(times_ms[1:], times_ms[:-1], out=steps[1:])
    first = np.flatnonzero(run_starts)  # position 0 is always a run start
    steps[first] = times_ms[first]
    return steps


def times_from_steps(run_starts: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The inverse of :func:`time_steps`: a running sum restarted at each entity's first event (never summing
    absolute times across entities, so no overflow however many entities a bucket holds)."""
    first = np.flatnonzero(run_starts)
    within = steps.copy()
    within[first] = 0
    running = np.cumsum(within)
    return running + np.repeat(steps[first] - running[first], np.diff(first, append=len(steps)))


def encode_numbers(values: np.ndarray) -> tuple[pa.Array, int | None]:
    """An exact scaled-integer column and its decimal places if the values have at most
    :data:`MAX_DECIMAL_PLACES`, else the float64 values as they are (places None).

    Exact means ``integer / 10 ** places`` gives every value back bit for bit, which is checked here with that
    very division; -0.0, NaN and infinities keep the float column (an integer has no sign of zero).
    """
    plain = pa.array(values, type=pa.float64())
    if not len(values) or not np.isfinite(values).all() or np.signbit(values[values == 0]).any():
        return plain, None
    for places in range(MAX_DECIMAL_PLACES + 1):
        scale = 10.0**places
        # Most wrong counts of places show in a few values; only a count that holds for them checks them all.
        if _scaled_exactly(values[:_SAMPLE], scale) is None:
            continue
        scaled = _scaled_exactly(values, scale)
        if scaled is not None:
            return pa.array(scaled.astype(np.int64), type=pa.int64()), places
    return plain, None


_SAMPLE = 64


def _scaled_exactly(values: np.ndarray, scale: float) -> np.ndarray | None:
    """``values * scale`` rounded, if every result is an exact integer that divides back to its value bit for
    bit; else None."""
    with np.errstate(over="ignore"):  # a huge value times the scale is inf: not exact, no warning needed
        scaled = np.round(values * scale)
    if (np.abs(scaled) < _EXACT_INTEGERS).all() and np.array_equal(scaled / scale, values):
        return scaled
    return None


def decode_numbers(field: pa.Field, column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64, whichever way :func:`encode_numbers` stored it."""
    places = (field.metadata or {}).get(PLACES_KEY)
    if places is None and pa.types.is_float64(field.type):
        return column.to_numpy().astype(np.float64, copy=False)
    if places is not None and pa.types.is_int64(field.type) and places.isdigit():
        return column.to_numpy().astype(np.float64) / 10.0 ** int(places)
    raise HistoryFormatError(f"stored entity state has a {field.type} number column: start from a new checkpoint")


def decode_history(data: bytes, features: EntityFeatureSet, *, state_buckets: int) -> EntityHistory:
    """The history :func:`encode_history` wrote (this format or format 2), with the columns ``features`` reads,
    if it was written with the same bucket count."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except pa.ArrowInvalid as exc:
        raise HistoryFormatError(
            f"stored entity state is not an Arrow stream ({exc}): written by an older featurestream? "
            "start the stream from a new checkpoint"
        ) from exc
    metadata = table.schema.metadata or {}
    version = metadata.get(FORMAT_KEY)
    if version not in READABLE_VERSIONS:
        raise HistoryFormatError(
            f"stored entity state has format {version!r}, this featurestream reads "
            f"{' and '.join(repr(v) for v in READABLE_VERSIONS)}: start the stream from a new checkpoint"
        )
    stored_buckets = metadata.get(BUCKETS_KEY, b"?").decode()
    if stored_buckets != str(state_buckets):
        raise HistoryFormatError(
            f"the checkpoint's entity state was written with stream.state_buckets={stored_buckets}, the job now "
            f"has {state_buckets}: entities would be looked up in buckets that do not hold their history. Set "
            f"stream.state_buckets back to {stored_buckets}, or start the stream from a new checkpoint"
        )
    time_column = TIME_COLUMN if version == b"2" else TIME_STEP_COLUMN
    missing = [
        name
        for name in (
            time_column,
            *(_NUMERIC_PREFIX + c for c in features.numeric_columns),
            *(_CATEGORY_PREFIX + c for c in features.category_columns),
        )
        if name not in table.column_names
    ]
    if missing:
        raise HistoryFormatError(f"stored {features.entity} state lacks {missing}: start from a new checkpoint")
    keys = _coded(table.column(KEY_COLUMN))
    if (keys.codes < 0).any():
        raise HistoryFormatError(
            f"stored {features.entity} state has events without an entity: start from a new checkpoint"
        )
    stored_times = table.column(time_column).to_numpy().astype(np.int64, copy=False)
    runs = keys.run_starts()
    if version == b"2":
        backwards = ((np.diff(stored_times) < 0) & ~runs[1:]).any()
        times_ms = stored_times
    else:
        backwards = ((stored_times < 0) & ~runs).any()
        times_ms = times_from_steps(runs, stored_times)
    if runs.sum() != np.count_nonzero(np.bincount(keys.codes, minlength=1)) or backwards:
        raise HistoryFormatError(
            f"stored {features.entity} state does not hold each entity's events together and in time order: "
            "start from a new checkpoint"
        )
    return EntityHistory(
        keys=keys,
        times_ms=times_ms,
        numeric={
            c: decode_numbers(table.schema.field(_NUMERIC_PREFIX + c), table.column(_NUMERIC_PREFIX + c))
            for c in features.numeric_columns
        },
        categories={c: _coded(table.column(_CATEGORY_PREFIX + c)) for c in features.category_columns},
    )


def _index_type(strings: CodedStrings) -> pa.DictionaryType:
    """Dictionary codes in 2 bytes while the dictionary allows (a bucket's merchants), else 4."""
    index = pa.int16() if len(strings.dictionary) <= np.iinfo(np.int16).max else pa.int32()
    return pa.dictionary(index, pa.string())


def _dictionary_array(strings: CodedStrings) -> pa.DictionaryArray:
    index = _index_type(strings).index_type
    indices = pa.array(strings.codes.astype(index.to_pandas_dtype()), type=index, mask=strings.codes < 0)
    return pa.DictionaryArray.from_arrays(indices, strings.dictionary)


def _coded(column: pa.ChunkedArray) -> CodedStrings:
    """A stored dictionary column as codes, without building a Python string per row; a dictionary holding a
    value twice (not written by this codec) is refused, since equal entities must have equal codes."""
    if column.num_chunks == 0:
        return CodedStrings.empty()
    if not pa.types.is_dictionary(column.type) or not pa.types.is_signed_integer(column.type.index_type):
        raise HistoryFormatError(f"stored entity state has a {column.type} column: start from a new checkpoint")
    chunk = column.unify_dictionaries().combine_chunks() if column.num_chunks > 1 else column.chunk(0)
    dictionary = chunk.dictionary.cast(pa.string())
    if pc.count_distinct(dictionary, mode="all").as_py() != len(dictionary):
        raise HistoryFormatError("stored entity state repeats a value in its dictionary: start from a new checkpoint")
    codes = chunk.indices.fill_null(-1).to_numpy().astype(np.int64, copy=False)
    return CodedStrings(codes, dictionary)
