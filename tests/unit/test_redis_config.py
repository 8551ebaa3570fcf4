"""Redis online store configuration: URL or Feast's form, the stack's server by default, Feast's exact key layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp  # type: ignore[import-untyped]  # no stubs installed

from pipelines.errors import ConfigurationError
from pipelines.feast_io.codec import encode_entity_keys
from pipelines.feast_io.redis_connection import redis_connection, url_to_feast
from pipelines.feast_io.redis_writer import timestamps
from pipelines.feast_io.store import repo_config
from pipelines.stack.redis_server import RedisServer, render_redis_conf
from pipelines.testing import isolated_settings


def test_unset_means_the_stacks_own_server(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, feast={"online_store": "redis"})
    connection = redis_connection(settings)
    assert (connection.host, connection.port) == ("127.0.0.1", 6379)
    assert repo_config(settings).online_store.connection_string == "127.0.0.1:6379"
    assert RedisServer(settings).wanted


def test_an_existing_redis_by_url(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path,
        feast={"online_store": "redis", "redis_connection_string": "rediss://app:p%40ss@cache.internal:6380/2"},
    )
    connection = redis_connection(settings)
    assert (connection.host, connection.port) == ("cache.internal", 6380)
    assert connection.options == {"db": 2, "username": "app", "password": "p@ss", "ssl": True}
    assert repo_config(settings).online_store.connection_string == connection.feast_connection_string
    assert "p@ss" not in repr(connection) and "p@ss" not in repr(settings) and "p@ss" not in connection.where
    assert not RedisServer(settings).wanted  # an existing Redis: the stack starts none


def test_feasts_own_form_is_read_by_feasts_parser(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path, feast={"online_store": "redis", "redis_connection_string": "r1:6379,db=3,password=s3cret"}
    )
    connection = redis_connection(settings)
    assert (connection.host, connection.port, connection.options) == ("r1", 6379, {"db": 3, "password": "s3cret"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("r1:6379,r2:6379", "exactly one host:port"),
        ("r1:port", "port must be a number"),
        ("redis:///0", "needs a host"),
        ("redis://r1:6379/zero", "database number"),
    ],
)
def test_bad_connection_strings_are_explained(tmp_path: Path, value: str, message: str) -> None:
    settings = isolated_settings(tmp_path, feast={"online_store": "redis", "redis_connection_string": value})
    with pytest.raises(ConfigurationError, match=message):
        redis_connection(settings)


def test_url_translation() -> None:
    assert url_to_feast("redis://localhost") == "localhost:6379"
    assert url_to_feast("redis://:pw@h:1/0") == "h:1,db=0,password=pw"


def test_entity_keys_are_feasts_redis_keys() -> None:
    ids = ["card-1", "ü-card", ""]
    ours = [key + b"featurestream" for key in encode_entity_keys("card_id", "String", ids)]
    feasts = [
        _redis_key(
            "featurestream",
            EntityKey(join_keys=["card_id"], entity_values=[Value(string_val=i)]),
            entity_key_serialization_version=3,
        )
        for i in ids
    ]
    assert ours == feasts


def test_timestamps_are_feasts_protobuf_with_microseconds() -> None:
    when = datetime(2026, 3, 1, 12, 0, 0, 654_321, tzinfo=UTC)
    micros = int(when.timestamp()) * 1_000_000 + 654_321
    ((seconds, nanos, encoded),) = timestamps(np.array([micros]))
    expected = Timestamp()
    expected.FromDatetime(when)  # what Feast's Redis writer stores
    assert (seconds, nanos, encoded) == (expected.seconds, expected.nanos, expected.SerializeToString())


def test_the_server_config_stays_on_loopback_and_persists(tmp_path: Path) -> None:
    conf = render_redis_conf(host="127.0.0.1", port=16379, data_dir=tmp_path, log_file=tmp_path / "r.log")
    lines = dict(line.split(" ", 1) for line in conf.splitlines())
    assert lines["bind"] == "127.0.0.1" and lines["port"] == "16379"
    assert lines["appendonly"] == "yes" and lines["maxmemory-policy"] == "noeviction"
    assert "{config-file}" in lines["proc-title-template"]
