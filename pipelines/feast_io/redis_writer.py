"""A guarded writer into Feast's Redis online store: compare and write in one atomic step, inside Redis.

Feast's own Redis writer reads the stored event times in one round trip and writes in a second: between the two,
another writer (another Spark task, another job) may store a newer event, which is then overwritten. Here the
comparison and the write run in one Lua script, and Redis runs a script atomically, so no other command can
slip in between: an older or replayed event can never replace a newer one, whatever runs concurrently.

The layout is Feast's (``feast.infra.online_stores.redis``), so ``FeatureStore.get_online_features`` reads what
this writes:

- one hash per entity, keyed by the serialized entity key (version 3) followed by the project name;
- per feature, the field ``mmh3("<view>:<feature>")`` (Feast's ``_mmh3``, computed on the driver) holding a
  serialized ``feast.types.Value`` (an empty message for null);
- the field ``_ts:<view>`` holding the event time as a serialized ``google.protobuf.Timestamp``.

The script decodes the stored ``Timestamp`` (it may have been written by Feast itself) and writes only if the
incoming event is at or after it. Equal times replace, as in the SQLite writer: a replayed batch rewrites the same
values. (Feast's own writer skips equal times; the difference only matters when a value is recomputed for the same
event.) The byte encoders are the ones in :mod:`pipelines.feast_io.codec`, tested byte for byte against Feast's.

Redis Cluster is not supported: a script may only touch keys of one hash slot, and one call writes many entities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp  # type: ignore[import-untyped]  # no stubs installed

from pipelines.arrow_values import python_values
from pipelines.feast_io.codec import encode_entity_keys, encode_values
from pipelines.feast_io.errors import FeastIOError, FeatureRowsError
from pipelines.feast_io.online import (
    FeatureRows,
    OnlineWriter,
    WriteStats,
    latest_per_entity,
    normalized,
)
from pipelines.feast_io.redis_connection import RedisConnection, redis_connection
from pipelines.feast_io.sqlite_writer import check_supported
from pipelines.feast_io.views import ViewSpec, spec_for, view_specs

if TYPE_CHECKING:
    from feast import FeatureStore

    from pipelines.config import Settings

ENTITIES_PER_CALL = 500
"""Entities per script call: large enough to amortise the round trip, small enough not to stall Redis for long."""

GUARDED_HSET = """
-- KEYS: one hash per entity. ARGV: ts field, number of features F, key TTL in seconds (0: none), the F feature
-- fields, then per key: event seconds, event nanos, the serialized Timestamp, its F serialized values.
local function varint(s, pos)
  local value, scale = 0, 1
  while true do
    local byte = string.byte(s, pos)
    if byte == nil then return nil, pos end
    value = value + (byte % 128) * scale
    pos = pos + 1
    if byte < 128 then return value, pos end
    scale = scale * 128
  end
end

-- google.protobuf.Timestamp: field 1 seconds (varint), field 2 nanos (varint). Unreadable -> treated as newest.
local function stored_time(s)
  local seconds, nanos, pos = 0, 0, 1
  while pos <= #s do
    local tag, value
    tag, pos = varint(s, pos)
    if tag == 8 then
      value, pos = varint(s, pos)
      seconds = value
    elseif tag == 16 then
      value, pos = varint(s, pos)
      nanos = value
    else
      return math.huge, 0
    end
    if value == nil then return math.huge, 0 end
  end
  return seconds, nanos
end

local ts_field = ARGV[1]
local features = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local first = 4 + features
local stride = 3 + features
local written = 0
for i, key in ipairs(KEYS) do
  local at = first + (i - 1) * stride
  local seconds, nanos = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local stored = redis.call('HGET', key, ts_field)
  local newer = true
  if stored then
    local stored_seconds, stored_nanos = stored_time(stored)
    newer = seconds > stored_seconds or (seconds == stored_seconds and nanos >= stored_nanos)
  end
  if newer then
    local fields = {ts_field, ARGV[at + 2]}
    for f = 1, features do
      fields[#fields + 1] = ARGV[3 + f]
      fields[#fields + 1] = ARGV[at + 2 + f]
    end
    redis.call('HSET', key, unpack(fields))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
"""


class RedisStoreError(FeastIOError):
    """The Redis online store cannot be reached or refused a write."""


@dataclass(frozen=True)
class RedisViewLayout:
    """Feast's hash field names of one feature view (computed on the driver with Feast's helpers)."""

    ts_field: bytes
    feature_fields: tuple[bytes, ...]


def view_layouts(store: FeatureStore) -> dict[str, RedisViewLayout]:
    """Hash field names of every view, exactly as Feast's Redis store names them (versioned names included)."""
    from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name

    versioning = bool(getattr(store.config.registry, "enable_online_feature_view_versioning", False))
    layouts = {}
    for view in store.list_feature_views(allow_cache=False):
        name = compute_versioned_name(view, versioning)
        layouts[view.name] = RedisViewLayout(
            ts_field=f"_ts:{name}".encode(),
            feature_fields=tuple(_mmh3(f"{name}:{feature.name}") for feature in view.features),
        )
    return layouts


def timestamps(event_us: np.ndarray) -> list[tuple[int, int, bytes]]:
    """(seconds, nanos, serialized Timestamp) per event time in UTC epoch microseconds, as Feast stores them."""
    out = []
    for micros in event_us.tolist():
        stamp = Timestamp()
        stamp.FromMicroseconds(micros)
        out.append((stamp.seconds, stamp.nanos, stamp.SerializeToString()))
    return out


class RedisOnlineWriter(OnlineWriter):
    """Guarded, pipelined writes into Feast's Redis online store; picklable, connects inside :meth:`write`."""

    def __init__(
        self,
        connection: RedisConnection,
        project: str,
        specs: Mapping[str, ViewSpec],
        layouts: Mapping[str, RedisViewLayout],
        *,
        key_ttl_seconds: int | None = None,
    ) -> None:
        self.connection = connection
        self.project = project.encode("utf-8")
        self.specs = dict(specs)
        self.layouts = dict(layouts)
        self.key_ttl_seconds = key_ttl_seconds or 0
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}  # a socket does not travel to executors

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisOnlineWriter:
        """Views and field names from the applied registry, on the driver; the writer is then shipped as is."""
        from pipelines.feast_io.store import feature_store

        store = feature_store(settings)
        if store.config.entity_key_serialization_version != 3:
            raise FeastIOError("the Redis writer encodes entity keys in Feast's serialization version 3 only")
        return cls(
            redis_connection(settings),
            store.project,
            view_specs(store),
            view_layouts(store),
            key_ttl_seconds=getattr(store.config.online_store, "key_ttl_seconds", None),
        )

    def _redis(self) -> Any:
        if self._client is None:
            self._client = self.connection.client()
        return self._client

    def write(self, view_name: str, rows: FeatureRows) -> WriteStats:
        started = perf_counter()
        spec = spec_for(self.specs, view_name)
        check_supported(spec)
        table = normalized(spec, rows)
        latest, event_us = latest_per_entity(spec, table)
        if latest.num_rows == 0:
            return WriteStats.measure(view_name, table.num_rows, 0, 0, started)
        if (event_us < 0).any():
            raise FeatureRowsError(f"rows for feature view {spec.name!r} have event times before 1970")
        join_key = spec.join_keys[0]
        keys = [
            key + self.project
            for key in encode_entity_keys(join_key, spec.join_key_types[0], python_values(latest.column(join_key)))
        ]
        values = [encode_values(f.dtype, python_values(latest.column(f.name))) for f in spec.features]
        written = self._guarded_write(
            self.layouts[view_name], keys, timestamps(event_us), list(zip(*values, strict=True))
        )
        return WriteStats.measure(view_name, table.num_rows, latest.num_rows, written, started)

    def _guarded_write(
        self,
        layout: RedisViewLayout,
        keys: Sequence[bytes],
        stamps: Sequence[tuple[int, int, bytes]],
        values: Sequence[tuple[bytes, ...]],
    ) -> int:
        """Run the script over the entities in chunks, all chunks in one pipelined round trip."""
        import redis

        client = self._redis()
        script = client.register_script(GUARDED_HSET)
        head = [layout.ts_field, len(layout.feature_fields), self.key_ttl_seconds, *layout.feature_fields]
        try:
            with client.pipeline(transaction=False) as pipe:
                for start in range(0, len(keys), ENTITIES_PER_CALL):
                    args: list[Any] = list(head)
                    for (seconds, nanos, stamp), row in zip(
                        stamps[start : start + ENTITIES_PER_CALL],
                        values[start : start + ENTITIES_PER_CALL],
                        strict=True,
                    ):
                        args += [seconds, nanos, stamp, *row]
                    script(keys=keys[start : start + ENTITIES_PER_CALL], args=args, client=pipe)
                return int(sum(pipe.execute()))
        except redis.RedisError as exc:
            self._client = None
            raise RedisStoreError(
                f"writing to the Redis online store at {self.connection.where} failed: {exc}"
            ) from exc
