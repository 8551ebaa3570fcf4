"""The per-worker cache of transactional clients: bounded, least recently used closed first."""

from __future__ import annotations

from typing import Any, cast

from pipelines.kafka.transactional_sink import ClientCache, TransactionalClients


class _Closeable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _clients() -> tuple[TransactionalClients, _Closeable]:
    consumer = _Closeable()
    return TransactionalClients(producer=cast(Any, object()), consumer=cast(Any, consumer)), consumer


def test_taken_clients_leave_the_cache_until_kept_again() -> None:
    cache = ClientCache(capacity=2)
    clients, _ = _clients()
    cache.keep(("b", "t0"), clients)
    assert cache.take(("b", "t0")) is clients
    assert cache.take(("b", "t0")) is None  # in use: a second task of the same id would build its own
    assert cache.take(("other-broker", "t0")) is None


def test_least_recently_kept_clients_are_closed_beyond_capacity() -> None:
    cache = ClientCache(capacity=2)
    made = [_clients() for _ in range(3)]
    for index, (clients, _) in enumerate(made):
        cache.keep(("b", f"t{index}"), clients)
    assert len(cache) == 2
    assert [consumer.closed for _, consumer in made] == [True, False, False]
    assert cache.take(("b", "t0")) is None
