"""The expectation suite's row rules, applied to one request in microseconds.

The stream judges records with Great Expectations; a GX run costs ~100 ms of fixed CPU per call here
(``pipelines/validation/engine.py``), five times the whole /score budget. So at start-up the suite's
expectations are read from the same file and turned into plain checks. The suite stays the one place the rules
live: an expectation type this module does not know, or a parameter expression it cannot evaluate, fails the
start-up instead of being skipped. A unit test holds these checks and GX to the same verdicts on generated
good and bad records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipelines.errors import ConfigurationError
from pipelines.validation.suite import LoadedSuite

_PARAMETER = re.compile(
    r"^\s*validation_time\s*(?:(?P<sign>[+-])\s*timedelta\(\s*(?P<unit>days|hours|minutes|seconds)\s*=\s*"
    r"(?P<amount>\d+(?:\.\d+)?)\s*\))?\s*$"
)


class UnsupportedRequestRuleError(ConfigurationError):
    """The suite holds an expectation (or parameter) the request-time checks cannot apply."""


@dataclass(frozen=True)
class Violation:
    column: str
    expectation: str
    message: str


@dataclass(frozen=True)
class _Bound:
    """A between bound: a constant, or ``validation_time`` +/- an offset (GX's ``$PARAMETER`` form)."""

    constant: Any = None
    offset: timedelta | None = None

    def value(self, now: datetime) -> Any:
        return now + self.offset if self.offset is not None else self.constant


def _bound(raw: Any) -> _Bound | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping) and "$PARAMETER" in raw:
        match = _PARAMETER.match(str(raw["$PARAMETER"]))
        if match is None:
            raise UnsupportedRequestRuleError(f"cannot evaluate the suite parameter {raw['$PARAMETER']!r} per request")
        offset = timedelta()
        if match["unit"]:
            offset = timedelta(**{match["unit"]: float(match["amount"])})
            offset = -offset if match["sign"] == "-" else offset
        return _Bound(offset=offset)
    return _Bound(constant=raw)


@dataclass(frozen=True)
class _Rule:
    name: str
    column: str
    kind: str
    description: str
    low: _Bound | None = None
    high: _Bound | None = None
    strict_low: bool = False
    strict_high: bool = False
    allowed: frozenset[Any] = frozenset()

    def check(self, value: Any, now: datetime) -> bool:
        if self.kind == "not_null":
            return value is not None
        if value is None:  # GX map expectations ignore nulls; the not-null rules catch them
            return True
        if self.kind == "in_set":
            return value in self.allowed
        low = self.low.value(now) if self.low else None
        high = self.high.value(now) if self.high else None
        if low is not None and (value <= low if self.strict_low else value < low):
            return False
        return not (high is not None and (value >= high if self.strict_high else value > high))


_KINDS = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_between": "between",
    "expect_column_values_to_be_in_set": "in_set",
}


class RequestRules:
    """The suite's rules as per-record checks."""

    def __init__(self, rules: list[_Rule]) -> None:
        self.rules = rules

    @classmethod
    def from_suite(cls, loaded: LoadedSuite) -> RequestRules:
        rules = []
        for expectation, described in zip(loaded.suite.expectations, loaded.expectations, strict=True):
            config = expectation.configuration
            kind = _KINDS.get(config.type)
            if kind is None:
                raise UnsupportedRequestRuleError(
                    f"{described.name} has no request-time check (known: {', '.join(sorted(_KINDS))}); "
                    "add one to pipelines/serving/validation.py"
                )
            kwargs = config.kwargs
            rules.append(
                _Rule(
                    name=described.name,
                    column=str(kwargs["column"]),
                    kind=kind,
                    description=described.description or described.name,
                    low=_bound(kwargs.get("min_value")),
                    high=_bound(kwargs.get("max_value")),
                    strict_low=bool(kwargs.get("strict_min", False)),
                    strict_high=bool(kwargs.get("strict_max", False)),
                    allowed=frozenset(kwargs.get("value_set") or ()),
                )
            )
        return cls(rules)

    @classmethod
    def default(cls) -> RequestRules:
        """The transactions suite (schemas/transactions.expectations.json), loaded with GX once."""
        from pipelines.validation.engine import loaded_suite

        return cls.from_suite(loaded_suite())

    def violations(self, record: Mapping[str, Any], now: datetime) -> list[Violation]:
        """Every rule ``record`` breaks; timestamps must be aware datetimes (compared with ``now``, UTC)."""
        return [
            Violation(rule.column, rule.name, rule.description)
            for rule in self.rules
            if not rule.check(record.get(rule.column), now)
        ]
