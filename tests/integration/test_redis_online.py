"""The guarded Redis online writer against a real redis-server: never back in time, idempotent on replay, atomic
under concurrent writers, and read back exactly by Feast's own SDK (``get_online_features``)."""

from __future__ import annotations

import pickle
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from feast import FeatureStore
from google.protobuf.timestamp_pb2 import Timestamp  # type: ignore[import-untyped]  # no stubs installed

from pipelines.config import Settings
from pipelines.feast_io.redis_connection import redis_connection
from pipelines.feast_io.redis_writer import RedisOnlineWriter, RedisStoreError
from pipelines.feast_io.store import apply_repo, feature_store
from pipelines.feast_io.writers import online_writer
from pipelines.stack.redis_server import RedisServer
from pipelines.testing.cluster import embedded_redis

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INTS = ("card_txn_count_10m", "card_txn_count_1h", "card_txn_count_24h", "card_distinct_merchants_24h")
FLOATS = (
    "card_amount_sum_1h",
    "card_amount_sum_24h",
    "card_amount_max_24h",
    "card_amount_mean_24h",
    "card_seconds_since_prev_txn",
)
FEATURES = (*INTS, *FLOATS)


@pytest.fixture(scope="module")
def redis_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with embedded_redis(tmp_path_factory.mktemp("redis-stack")) as settings:
        apply_repo(settings)
        yield settings


@pytest.fixture(scope="module")
def store(redis_settings: Settings) -> FeatureStore:
    return feature_store(redis_settings)


@pytest.fixture(scope="module")
def writer(redis_settings: Settings) -> RedisOnlineWriter:
    built = online_writer(redis_settings)
    assert isinstance(built, RedisOnlineWriter)
    return built


def card_rows(cards: Sequence[str], times: Sequence[datetime], seed: int = 0) -> pd.DataFrame:
    """Feature rows with distinct, exactly representable values; every 7th float is null."""
    rng = np.random.default_rng(seed)
    n = len(cards)
    frame: dict[str, Any] = {"card_id": list(cards), "event_time": pd.to_datetime(list(times), utc=True)}
    for name in INTS:
        frame[name] = rng.integers(0, 10_000, n)
    for name in FLOATS:
        frame[name] = np.where(np.arange(n) % 7 == 3, np.nan, rng.normal(0, 1e6, n))
    return pd.DataFrame(frame)


def expected(rows: pd.DataFrame) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"card_id": rows["card_id"].tolist()}
    for name in FEATURES:
        out[name] = [None if name in FLOATS and np.isnan(v) else v for v in rows[name].tolist()]
    return out


def read(store: FeatureStore, cards: Sequence[str]) -> dict[str, list[Any]]:
    response = store.get_online_features(
        features=[f"card_features:{name}" for name in FEATURES], entity_rows=[{"card_id": c} for c in cards]
    )
    return response.to_dict()


def new_cards(n: int) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    return [f"card-{prefix}-{i}" for i in range(n)]


def test_values_read_back_through_feast_exactly(writer: RedisOnlineWriter, store: FeatureStore) -> None:
    rows = card_rows(new_cards(50), [T0 + timedelta(seconds=i) for i in range(50)])
    stats = writer.write("card_features", rows)
    assert (stats.entities, stats.written, stats.stale) == (50, 50, 0)
    assert read(store, rows["card_id"].tolist()) == expected(rows)


def test_event_times_keep_their_microseconds(writer: RedisOnlineWriter, redis_settings: Settings) -> None:
    """Feast's SDK returns whole seconds, but the stored Timestamp (what the guard compares) keeps microseconds."""
    cards = new_cards(1)
    writer.write("card_features", card_rows(cards, [T0 + timedelta(microseconds=123_456)]))
    client = redis_connection(redis_settings).client()
    (key,) = [k for k in client.scan_iter(match=b"*featurestream", count=10_000) if cards[0].encode() in k]
    stamp = Timestamp()
    stamp.ParseFromString(client.hget(key, b"_ts:card_features"))
    assert stamp.ToDatetime(tzinfo=UTC) == T0 + timedelta(microseconds=123_456)


def test_an_older_event_never_replaces_a_newer_one(writer: RedisOnlineWriter, store: FeatureStore) -> None:
    cards = new_cards(20)
    newer = card_rows(cards, [T0 + timedelta(milliseconds=500)] * 20, seed=1)
    older = card_rows(cards, [T0 + timedelta(milliseconds=499)] * 20, seed=2)
    assert writer.write("card_features", newer).written == 20
    stats = writer.write("card_features", older)
    assert (stats.written, stats.stale) == (0, 20)
    assert read(store, cards) == expected(newer)


def test_a_newer_event_replaces_an_older_one_within_the_same_second(
    writer: RedisOnlineWriter, store: FeatureStore
) -> None:
    cards = new_cards(5)
    writer.write("card_features", card_rows(cards, [T0 + timedelta(microseconds=1)] * 5, seed=3))
    later = card_rows(cards, [T0 + timedelta(microseconds=2)] * 5, seed=4)
    assert writer.write("card_features", later).written == 5
    assert read(store, cards) == expected(later)


def test_replaying_a_batch_is_idempotent(
    writer: RedisOnlineWriter, store: FeatureStore, redis_settings: Settings
) -> None:
    cards = new_cards(30)
    batch = card_rows(cards, [T0 + timedelta(seconds=i) for i in range(30)], seed=5)
    writer.write("card_features", batch)
    client = redis_connection(redis_settings).client()
    keys = sorted(client.scan_iter(match=b"*featurestream"))
    before = {key: client.hgetall(key) for key in keys}
    assert writer.write("card_features", batch).written == 30  # same times: rewritten with the same values
    assert {key: client.hgetall(key) for key in keys} == before
    assert read(store, cards) == expected(batch)


def test_each_entity_keeps_its_latest_row_whatever_the_input_order(
    writer: RedisOnlineWriter, store: FeatureStore
) -> None:
    cards = new_cards(10)
    rows = card_rows(cards * 3, [T0 + timedelta(seconds=s) for s in [3] * 10 + [9] * 10 + [1] * 10], seed=6)
    shuffled = rows.sample(frac=1.0, random_state=1)
    assert writer.write("card_features", shuffled).entities == 10
    assert read(store, cards) == expected(rows.iloc[10:20])


def test_concurrent_writers_leave_each_entity_at_its_latest_event(
    writer: RedisOnlineWriter, store: FeatureStore
) -> None:
    cards = new_cards(300)
    rng = np.random.default_rng(8)
    batches = [
        card_rows(cards, [T0 + timedelta(milliseconds=int(ms)) for ms in rng.integers(0, 100_000, 300)], seed=i)
        for i in range(8)
    ]
    errors: list[BaseException] = []

    def write(chunk: list[pd.DataFrame]) -> None:
        try:
            shipped = pickle.loads(pickle.dumps(writer))  # as on an executor
            for batch in chunk:
                shipped.write("card_features", batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(batches[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everything = pd.concat(batches, ignore_index=True)
    latest = everything.loc[everything.groupby("card_id", sort=False)["event_time"].idxmax()]
    assert read(store, cards) == expected(latest.set_index("card_id").loc[cards].reset_index())


def test_a_row_written_by_feast_itself_is_guarded_too(writer: RedisOnlineWriter, store: FeatureStore) -> None:
    cards = new_cards(1)
    feast_row = card_rows(cards, [T0 + timedelta(milliseconds=400)], seed=9)
    store.write_to_online_store("card_features", feast_row)
    assert writer.write("card_features", card_rows(cards, [T0 + timedelta(milliseconds=399)], seed=10)).stale == 1
    assert read(store, cards) == expected(feast_row)
    newer = card_rows(cards, [T0 + timedelta(milliseconds=401)], seed=11)
    assert writer.write("card_features", newer).written == 1
    assert read(store, cards) == expected(newer)


def test_stored_bytes_equal_what_feasts_own_writer_stores(
    writer: RedisOnlineWriter, store: FeatureStore, redis_settings: Settings
) -> None:
    ours, feasts = new_cards(40), new_cards(40)
    times = [T0 + timedelta(seconds=i, microseconds=7 * i) for i in range(40)]
    writer.write("card_features", card_rows(ours, times, seed=12))
    store.write_to_online_store("card_features", card_rows(feasts, times, seed=12))
    client = redis_connection(redis_settings).client()

    def hashes(cards: list[str]) -> list[dict[bytes, bytes]]:
        keys = sorted(k for k in client.scan_iter(match=b"*featurestream", count=10_000) if cards[0][:13].encode() in k)
        assert len(keys) == 40
        return [client.hgetall(key) for key in keys]

    assert hashes(ours) == hashes(feasts)


def test_merchant_view_too(writer: RedisOnlineWriter, store: FeatureStore) -> None:
    merchants = [f"m-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    rows = pd.DataFrame(
        {
            "merchant_id": merchants,
            "event_time": pd.to_datetime([T0] * 3, utc=True),
            "merchant_txn_count_1h": [1, 2, 3],
            "merchant_amount_mean_24h": [1.5, float("nan"), 3.25],
        }
    )
    assert writer.write("merchant_features", rows).written == 3
    got = store.get_online_features(
        features=["merchant_features:merchant_txn_count_1h", "merchant_features:merchant_amount_mean_24h"],
        entity_rows=[{"merchant_id": m} for m in merchants],
    ).to_dict()
    assert got["merchant_txn_count_1h"] == [1, 2, 3]
    assert got["merchant_amount_mean_24h"] == [1.5, None, 3.25]


def test_an_unreachable_redis_is_reported_with_its_address(writer: RedisOnlineWriter, tmp_path: Path) -> None:
    from pipelines.feast_io.redis_connection import RedisConnection

    gone = RedisConnection("127.0.0.1:1", "127.0.0.1", 1, {"socket_connect_timeout": 1})
    broken = RedisOnlineWriter(gone, "featurestream", writer.specs, writer.layouts)
    with pytest.raises(RedisStoreError, match=re.escape("127.0.0.1:1/0")):
        broken.write("card_features", card_rows(new_cards(1), [T0]))


def test_the_stack_server_restarts_with_its_data(redis_settings: Settings, tmp_path: Path) -> None:
    server = RedisServer(redis_settings)
    assert server.up() is False  # already running: nothing started twice
    status = server.status()
    assert status.running and status.address == f"127.0.0.1:{redis_settings.stack.redis_port}"
    client = redis.Redis(port=redis_settings.stack.redis_port)
    client.set(b"featurestream-test-marker", b"1")
    assert server.down() is True
    assert server.status().running is False
    assert server.up() is True  # append-only file: the data survive a restart
    assert client.get(b"featurestream-test-marker") == b"1"


def test_stack_status_shows_the_redis_server(redis_settings: Settings) -> None:
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    env = {
        "FEATURESTREAM_STACK__STATE_DIR": str(redis_settings.stack.state_dir),
        "FEATURESTREAM_STACK__REDIS_PORT": str(redis_settings.stack.redis_port),
        "FEATURESTREAM_STACK__BROKER_PORT": str(redis_settings.stack.broker_port),
        "FEATURESTREAM_STACK__CONTROLLER_PORT": str(redis_settings.stack.controller_port),
        "FEATURESTREAM_FEAST__ONLINE_STORE": "redis",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["stack", "status"], env=env)
    assert result.exit_code == 3  # no Kafka in this stack: status says so
    line = next(line for line in result.output.splitlines() if "redis-server" in line)
    assert "running" in line and f"127.0.0.1:{redis_settings.stack.redis_port}" in line
