"""A fast, guarded writer into Feast's own SQLite online store tables.

Feast's ``write_to_online_store`` on SQLite builds a protobuf per value and runs one UPSERT per (entity,
feature) from Python, and overwrites unconditionally. This writer keeps Feast's table layout and byte formats
(so ``FeatureStore.get_online_features`` reads what it writes) but:

- stages the rows in a temporary table with one ``executemany`` (one row per entity, not per feature), then
  merges them with a single set-based UPSERT, sorted by key, in one ``BEGIN IMMEDIATE`` transaction;
- guards inside that UPSERT: a stored row is replaced only if the incoming event time is at or after the stored
  one. The check and the write are one statement under SQLite's write lock, so two concurrent writer tasks
  cannot interleave a read and a write. Equal times replace (a replayed batch rewrites the same values; a
  recomputation at the same event time may correct them); older times never do.

Feast stores ``event_ts`` in whole seconds, too coarse to order two events of one card within a second, so the
guard compares an extra column, ``featurestream_event_us`` (Feast's seconds * 10^6 + the microseconds), added to
Feast's table by :func:`prepare_online_tables`. Feast ignores the column. If the row was last written by Feast
itself (``event_ts`` no longer matches our column), the guard conservatively takes the stored event as the last
microsecond of its second, so it still never goes back in time.

Not maintained: ``value_text`` / ``value_num`` (Feast fills them only for its document search and metadata
filters, which our feature views do not use) are written as NULL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

from pipelines.arrow_values import python_values
from pipelines.feast_io.codec import (
    ENTITY_KEY_TYPES,
    VALUE_ENCODERS,
    encode_entity_keys,
    encode_values,
    feast_event_seconds,
    truncated_seconds,
)
from pipelines.feast_io.errors import OnlineStoreNotReadyError, UnsupportedFeatureTypeError
from pipelines.feast_io.online import (
    FeatureRows,
    OnlineWriter,
    WriteStats,
    latest_per_entity,
    normalized,
)
from pipelines.feast_io.paths import feast_paths
from pipelines.feast_io.views import ViewSpec, spec_for, view_specs

if TYPE_CHECKING:
    from pipelines.config import Settings

GUARD_COLUMN = "featurestream_event_us"
DEFAULT_BUSY_TIMEOUT_S = 60.0
_OLDEST = -(2**63)


def _quote_id(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _quote_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def check_supported(spec: ViewSpec) -> None:
    """Raise :class:`UnsupportedFeatureTypeError` unless this writer can encode every column of ``spec``."""
    if len(spec.join_keys) != 1 or spec.join_key_types[0] not in ENTITY_KEY_TYPES:
        raise UnsupportedFeatureTypeError(
            f"feature view {spec.name!r}: the SQLite writer handles one String/Int64/Int32 join key, "
            f"not {list(zip(spec.join_keys, spec.join_key_types, strict=True))}"
        )
    if not spec.features:
        raise UnsupportedFeatureTypeError(f"feature view {spec.name!r} has no features to write")
    unsupported = [f"{f.name}: {f.dtype}" for f in spec.features if f.dtype not in VALUE_ENCODERS]
    if unsupported:
        raise UnsupportedFeatureTypeError(f"feature view {spec.name!r}: no fast encoder for {', '.join(unsupported)}")


def _stage_sql(spec: ViewSpec) -> tuple[str, str]:
    values = ", ".join(f"v{i} BLOB" for i in range(len(spec.features)))
    create = f"CREATE TEMP TABLE stage (entity_key BLOB, event_ts INTEGER, event_us INTEGER, {values})"
    insert = f"INSERT INTO temp.stage VALUES ({', '.join('?' * (3 + len(spec.features)))})"
    return create, insert


def _upsert_sql(spec: ViewSpec) -> str:
    """One statement that unpivots the staged entities into Feast's (entity, feature) rows and merges them."""
    table = _quote_id(spec.online_table)
    names = ", ".join(f"({i}, {_quote_text(f.name)})" for i, f in enumerate(spec.features))
    value = " ".join(f"WHEN {i} THEN s.v{i}" for i in range(len(spec.features)))
    stored_us = (
        f"CASE WHEN {table}.{GUARD_COLUMN} IS NOT NULL AND {table}.{GUARD_COLUMN} / 1000000 = {table}.event_ts "
        f"THEN {table}.{GUARD_COLUMN} ELSE coalesce({table}.event_ts * 1000000 + 999999, {_OLDEST}) END"
    )
    return (
        f"WITH names(i, feature_name) AS (VALUES {names}) "
        f"INSERT INTO {table} (entity_key, feature_name, value, value_text, event_ts, created_ts, {GUARD_COLUMN}) "
        f"SELECT s.entity_key, n.feature_name, CASE n.i {value} END, NULL, s.event_ts, NULL, s.event_us "
        "FROM temp.stage AS s CROSS JOIN names AS n WHERE true ORDER BY s.entity_key, n.feature_name "
        "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, value_text = NULL, "
        f"event_ts = excluded.event_ts, created_ts = NULL, {GUARD_COLUMN} = excluded.{GUARD_COLUMN} "
        f"WHERE excluded.{GUARD_COLUMN} >= {stored_us}"
    )


def _connect(db_path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection to an existing online store (mode=rw: a missing file is an error, not a new empty store)."""
    try:
        conn = sqlite3.connect(f"{db_path.as_uri()}?mode=rw", uri=True, timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise OnlineStoreNotReadyError(
            f"cannot open the online store {db_path} ({exc}); run `featurestream features apply`"
        ) from exc
    # WAL lets Feast's readers run during a write; NORMAL sync is durable against process crashes (not power
    # loss) in WAL mode, and the offline store keeps every event anyway.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _ensure_guard_column(conn: sqlite3.Connection, table: str) -> None:
    columns = {row[1] for row in conn.execute(f"PRAGMA table_info({_quote_id(table)})")}
    if not columns:
        raise OnlineStoreNotReadyError(f"the online store has no table {table}; run `featurestream features apply`")
    if GUARD_COLUMN not in columns:
        try:
            conn.execute(f"ALTER TABLE {_quote_id(table)} ADD COLUMN {GUARD_COLUMN} INTEGER")
        except sqlite3.OperationalError as exc:  # another writer added it first
            if "duplicate column" not in str(exc):
                raise


def prepare_online_tables(db_path: Path, specs: Mapping[str, ViewSpec]) -> None:
    """Switch the store to WAL and add the guard column to each view's table (idempotent; run after apply)."""
    conn = _connect(db_path, DEFAULT_BUSY_TIMEOUT_S)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for spec in specs.values():
            _ensure_guard_column(conn, spec.online_table)
        conn.execute("COMMIT")
    finally:
        conn.close()


class SqliteOnlineWriter(OnlineWriter):
    """Guarded, batched writes straight into Feast's SQLite online store tables.

    Holds only a path and the view specs, so Spark ships it to executors as is; each :meth:`write` opens its own
    connection and waits up to ``busy_timeout_s`` for another task's write lock.
    """

    def __init__(
        self, db_path: Path | str, specs: Mapping[str, ViewSpec], *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ) -> None:
        self.db_path = Path(db_path)
        self.specs = dict(specs)
        self.busy_timeout_s = busy_timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteOnlineWriter:
        """Read the view specs from the applied registry (on the driver; the writer is then pickled to executors)."""
        from pipelines.feast_io.store import feature_store  # store imports this module

        return cls(feast_paths(settings).online_db, view_specs(feature_store(settings)))

    def write(self, view_name: str, rows: FeatureRows) -> WriteStats:
        started = perf_counter()
        spec = spec_for(self.specs, view_name)
        check_supported(spec)
        table = normalized(spec, rows)
        latest, event_us = latest_per_entity(spec, table)
        if latest.num_rows == 0:
            return WriteStats.measure(view_name, table.num_rows, 0, 0, started)

        seconds = feast_event_seconds(event_us)
        guard_us = seconds * 1_000_000 + (event_us - truncated_seconds(event_us) * 1_000_000)
        key_column = python_values(latest.column(spec.join_keys[0]))
        keys = encode_entity_keys(spec.join_keys[0], spec.join_key_types[0], key_column)
        values = [encode_values(f.dtype, python_values(latest.column(f.name))) for f in spec.features]
        # Sorted by entity key, the merge walks Feast's primary-key index in order instead of at random.
        staged = sorted(zip(keys, seconds.tolist(), guard_us.tolist(), *values, strict=True))

        # An entity's feature rows share one event time, so they are replaced or kept together.
        written = self._merge(spec, staged) // len(spec.features)
        return WriteStats.measure(view_name, table.num_rows, len(staged), written, started)

    def _merge(self, spec: ViewSpec, staged: list[tuple[object, ...]]) -> int:
        """Stage, then merge under the write lock; returns the number of (entity, feature) rows changed."""
        create_stage, insert_stage = _stage_sql(spec)
        conn = _connect(self.db_path, self.busy_timeout_s)
        try:
            conn.execute(create_stage)
            # Filling the temporary table touches only this connection's temp database: no lock on the store.
            conn.execute("BEGIN")
            conn.executemany(insert_stage, staged)
            conn.execute("COMMIT")
            # IMMEDIATE takes the write lock up front, so a concurrent writer waits (busy timeout) instead of
            # failing with SQLITE_BUSY when its read snapshot turns stale.
            conn.execute("BEGIN IMMEDIATE")
            try:
                _ensure_guard_column(conn, spec.online_table)
                before = conn.total_changes
                conn.execute(_upsert_sql(spec))
                changed = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return changed
        finally:
            conn.close()
