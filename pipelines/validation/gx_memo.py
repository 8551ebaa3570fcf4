"""Memoise what GX rebuilds from unchanging inputs, for the span of one validation.

While GX Core 1.x builds its metric graph for a validation, it rebuilds the same things from the same objects
hundreds of times. Three of them were most of the ~115 ms a validation of the transactions suite cost whatever
the batch size (13 expectations, two value sets of 181 and 249 codes; cProfile on this machine):

- ``Expectation.configuration``, a property that makes a pydantic ``dict()`` deep copy of every argument, value
  sets included, on each access: ~125 accesses per expectation and validation (115 -> 55 ms per call);
- ``ExpectationConfiguration.to_domain_obj``, which builds a new expectation object (pydantic validation of every
  argument) each time a metric's arguments are looked up, ~180 times per validation; each new object then
  misses the configuration memo above;
- ``IDDict.to_id``, the id of a metric's arguments: every argument, a value set's every code included, converted
  to JSON and hashed, twice per metric configuration, ~670 configurations per validation.

The last two took a 2,500-row validation from 61 to 33 ms (median of 30 calls each, the same process,
2026-12-07). A streaming micro-batch validates a few thousand rows per task, so this fixed cost sits on the
latency path of every batch.

While :func:`memoised_configurations` is active on a thread, each of them returns what it computed the first time
for the same object (an ``IDDict``: for dictionaries holding the same objects under the same keys); everywhere
else, and on every other thread, GX behaves as shipped. The memo lives no longer than one validation, during which
GX does not modify the expectations, their arguments or the metric arguments it builds from them (the tests
compare GX's whole results with and without the memo). A memo entry holds the objects its key names, so their
ids cannot be reused while it lives. If GX stops defining one of these as this module expects, that one is left
alone and validation runs at GX's own speed there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

_ACTIVE = threading.local()
"""``memo``: key -> (the objects the key names, result), on a thread inside :func:`memoised_configurations`."""
_INSTALL_LOCK = threading.Lock()
_MEMO_MARK = "_featurestream_memoised"


def _current_memo() -> dict[Hashable, tuple[Any, Any]] | None:
    memo: dict[Hashable, tuple[Any, Any]] | None = getattr(_ACTIVE, "memo", None)
    return memo


def _by_identity(build: Callable[[Any], Any], kind: str) -> Callable[[Any], Any]:
    """``build(obj)``, computed once per object inside the block."""

    def memoised(obj: Any) -> Any:
        memo = _current_memo()
        if memo is None:
            return build(obj)
        held = memo.get((kind, id(obj)))
        if held is None or held[0] is not obj:
            held = memo[(kind, id(obj))] = (obj, build(obj))
        return held[1]

    setattr(memoised, _MEMO_MARK, True)
    return memoised


def _id_by_contents(to_id: Callable[..., Any]) -> Callable[..., Any]:
    """``IDDict.to_id``, computed once per (key, value object) contents inside the block."""

    def memoised(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        memo = _current_memo()
        if memo is None or id_keys is not None or id_ignore_keys is not None:
            return to_id(self, id_keys, id_ignore_keys)
        key = ("to_id", type(self), tuple((name, id(value)) for name, value in self.items()))
        held = memo.get(key)
        if held is None:
            held = memo[key] = (list(self.values()), to_id(self))
        return held[1]

    setattr(memoised, _MEMO_MARK, True)
    return memoised


def install() -> bool:
    """Wrap GX's three rebuilders once per process; returns whether the configuration memo can work."""
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    with _INSTALL_LOCK:
        shipped = Expectation.__dict__.get("configuration")
        if not isinstance(shipped, property) or shipped.fget is None:
            return False
        if not getattr(shipped.fget, _MEMO_MARK, False):
            memoised = _by_identity(shipped.fget, "configuration")
            Expectation.configuration = property(memoised, doc=shipped.__doc__)  # type: ignore[method-assign,assignment]
        to_domain_obj = ExpectationConfiguration.__dict__.get("to_domain_obj")
        if callable(to_domain_obj) and not getattr(to_domain_obj, _MEMO_MARK, False):
            ExpectationConfiguration.to_domain_obj = _by_identity(to_domain_obj, "to_domain_obj")  # type: ignore[method-assign,assignment]
        to_id = IDDict.__dict__.get("to_id")
        if callable(to_id) and not getattr(to_id, _MEMO_MARK, False):
            IDDict.to_id = _id_by_contents(to_id)  # type: ignore[method-assign]
        return True


@contextmanager
def memoised_configurations() -> Iterator[None]:
    """Within the block, on this thread, each memoised GX rebuild runs once per object."""
    outer = _current_memo()
    _ACTIVE.memo = {} if outer is None else outer
    try:
        yield
    finally:
        _ACTIVE.memo = outer
