"""Pick the online writer for the configured store."""

from __future__ import annotations

from pipelines.config import Settings
from pipelines.feast_io.online import OnlineWriter
from pipelines.feast_io.sdk_writer import FeastSdkOnlineWriter
from pipelines.feast_io.sqlite_writer import SqliteOnlineWriter


def online_writer(settings: Settings) -> OnlineWriter:
    """The writer for ``settings.feast.online_store``; build it on the driver after `featurestream features apply`.

    SQLite gets the atomic, batched :class:`SqliteOnlineWriter`. Redis goes through Feast's SDK for now (Feast's
    Redis store compares event times itself; a dedicated Redis writer is issue 8).
    """
    if settings.feast.online_store == "sqlite":
        return SqliteOnlineWriter.from_settings(settings)
    return FeastSdkOnlineWriter(settings)
