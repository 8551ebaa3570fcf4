"""The request-time checks come from the expectation suite and judge records exactly as GX does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pipelines.generator.bad_records import INVALID_KINDS
from pipelines.generator.generator import GeneratorOptions, TransactionGenerator
from pipelines.serving.validation import RequestRules, UnsupportedRequestRuleError
from pipelines.validation.engine import validate_rows
from pipelines.validation.suite import load_suite, read_suite_json

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def generated_records() -> list[dict]:  # type: ignore[type-arg]
    options = GeneratorOptions(
        count=3_000,
        now_ms=int(NOW.timestamp() * 1000),
        seed=5,
        cards=200,
        merchants=40,
        start_ms=int(NOW.timestamp() * 1000) - 86_400_000,
        duration_ms=86_400_000,
        bad_fraction=0.2,
        bad_kinds=INVALID_KINDS,
    )
    generator = TransactionGenerator(options)
    return [r for chunk in generator.chunks() for r in chunk.transactions.records(generator.population)]


def test_every_generated_record_gets_the_same_verdict_as_from_gx() -> None:
    records = generated_records()
    frame = pd.DataFrame(records)
    frame["event_time"] = pd.to_datetime(frame["event_time"], unit="ms", utc=True)
    gx = validate_rows(frame, now=NOW)

    rules = RequestRules.default()
    ours = np.array(
        [
            not rules.violations({**r, "event_time": datetime.fromtimestamp(r["event_time"] / 1000, UTC)}, NOW)
            for r in records
        ]
    )
    assert 0 < (~ours).sum() < len(records)  # both good and bad records were judged
    np.testing.assert_array_equal(ours, gx.valid)
    failed = gx.failed_expectations
    for position in np.flatnonzero(~ours)[:200]:
        moment = datetime.fromtimestamp(records[position]["event_time"] / 1000, UTC)
        record = {**records[position], "event_time": moment}
        assert sorted(v.expectation for v in rules.violations(record, NOW)) == sorted(failed[position])


def suite_with(expectation: dict) -> str:  # type: ignore[type-arg]
    suite = json.loads(read_suite_json())
    suite["expectations"].append(expectation)
    return json.dumps(suite)


def test_an_expectation_without_a_request_check_stops_the_start_up() -> None:
    loaded = load_suite(
        suite_with({"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "currency", "value": 3}})
    )
    with pytest.raises(UnsupportedRequestRuleError, match="expect_column_value_lengths_to_equal"):
        RequestRules.from_suite(loaded)


def test_a_parameter_it_cannot_evaluate_stops_the_start_up() -> None:
    loaded = load_suite(
        suite_with(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "country", "max_value": {"$PARAMETER": "validation_time.year"}},
            }
        )
    )
    with pytest.raises(UnsupportedRequestRuleError, match=r"validation_time\.year"):
        RequestRules.from_suite(loaded)
