"""Where the Redis online store is, in the two forms that need it: Feast's connection string and redis-py's kwargs.

Users name an existing Redis either by URL (``redis://[:password@]host:port[/db]``, ``rediss://`` for TLS), the
form every Redis tool knows, or in Feast's own form (``host:port,db=0,password=...,ssl=true``). Unset, the
online store is the stack's redis-server on ``stack.host:stack.redis_port``. Feast only understands its form, so
a URL is translated here; redis-py's kwargs for our writer come from Feast's own parser, so both clients always
agree on host, port, database and credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pipelines.config import Settings
from pipelines.errors import ConfigurationError

_URL_SCHEMES = ("redis://", "rediss://")


@dataclass(frozen=True)
class RedisConnection:
    """How to reach the online store's Redis; picklable (shipped to executors), the password never shown."""

    feast_connection_string: str = field(repr=False)
    host: str
    port: int
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    """Further redis-py keyword arguments (db, password, ssl, ...), from Feast's parser."""

    def client(self) -> Any:
        """A new redis-py client (lazy: no connection until the first command)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, **self.options)

    @property
    def where(self) -> str:
        """host:port/db, for messages: no credentials."""
        return f"{self.host}:{self.port}/{self.options.get('db', 0)}"


def url_to_feast(url: str) -> str:
    """``redis://user:pw@host:6380/2`` -> ``host:6380,db=2,username=user,password=pw`` (Feast's form)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigurationError("feast.redis_connection_string: a redis:// URL needs a host")
    items = [f"{parts.hostname}:{parts.port or 6379}"]
    database = parts.path.lstrip("/")
    if database:
        if not database.isdigit():
            raise ConfigurationError("feast.redis_connection_string: the URL's path must be a database number")
        items.append(f"db={database}")
    if parts.username:
        items.append(f"username={unquote(parts.username)}")
    if parts.password:
        items.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        items.append("ssl=true")
    if any("," in item.split("=", 1)[-1] for item in items[1:]):
        raise ConfigurationError("feast.redis_connection_string: Feast's connection string cannot hold a ','")
    return ",".join(items)


def _parse_feast(connection_string: str) -> tuple[str, int, dict[str, Any]]:
    """Feast's parser (RedisOnlineStore._parse_connection_string), so we read the string exactly as Feast does."""
    try:
        from feast.infra.online_stores.redis import RedisOnlineStore

        nodes, params = RedisOnlineStore._parse_connection_string(connection_string)
    except ImportError:  # an executor without Feast's Redis extra: the same small grammar, by hand
        nodes = [
            dict(zip(["host", "port"], c.split(":"), strict=False))
            for c in connection_string.split(",")
            if "=" not in c
        ]
        params = {}
        for item in connection_string.split(","):
            if "=" in item:
                key, value = item.split("=", 1)
                try:
                    params[key] = json.loads(value)
                except json.JSONDecodeError:
                    params[key] = value
    if len(nodes) != 1 or "port" not in nodes[0]:
        raise ConfigurationError(
            "feast.redis_connection_string must name exactly one host:port (Redis Cluster is not supported by the "
            "guarded writer)"
        )
    try:
        port = int(nodes[0]["port"])
    except ValueError:
        raise ConfigurationError("feast.redis_connection_string: the port must be a number") from None
    return str(nodes[0]["host"]), port, dict(params)


def redis_connection(settings: Settings) -> RedisConnection:
    """The online store's Redis from settings: the configured URL / string, else the stack's redis-server."""
    configured = settings.feast.redis_connection_string
    if configured is None:
        raw = f"{settings.stack.host}:{settings.stack.redis_port}"
    else:
        raw = configured.get_secret_value().strip()
    feast_form = url_to_feast(raw) if raw.startswith(_URL_SCHEMES) else raw
    host, port, options = _parse_feast(feast_form)
    return RedisConnection(feast_form, host, port, options)
