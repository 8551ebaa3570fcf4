"""Pick the online writer for the configured store."""

from __future__ import annotations

from pipelines.config import Settings
from pipelines.feast_io.online import OnlineWriter
from pipelines.feast_io.redis_writer import RedisOnlineWriter
from pipelines.feast_io.sqlite_writer import SqliteOnlineWriter


def online_writer(settings: Settings) -> OnlineWriter:
    """The guarded writer for ``settings.feast.online_store``; build it on the driver after `features apply`.

    Both keep Feast's layout (Feast's SDK reads what they write) and compare event times atomically inside the
    store: SQLite in one UPSERT under its write lock, Redis in one Lua script.
    """
    if settings.feast.online_store == "sqlite":
        return SqliteOnlineWriter.from_settings(settings)
    return RedisOnlineWriter.from_settings(settings)
