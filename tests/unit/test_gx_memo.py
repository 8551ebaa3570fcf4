"""The GX memos change nothing GX decides, and are active only inside their block, on its thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from pipelines.validation import get_validator
from pipelines.validation.engine import RESULT_FORMAT, VALIDATION_TIME_PARAMETER
from pipelines.validation.gx_memo import install, memoised_configurations

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def every_rule_broken() -> pd.DataFrame:
    """Rows that each break different expectations of the transactions suite, and one valid row (the last)."""
    rows = 14
    frame = pd.DataFrame(
        {
            "event_id": [f"evt-{i}" for i in range(rows)],
            "card_id": [f"card-{i % 5}" for i in range(rows)],
            "merchant_id": [f"m-{i % 3}" for i in range(rows)],
            "amount": [10.0 + i for i in range(rows)],
            "currency": ["EUR"] * rows,
            "country": ["DE"] * rows,
            "channel": ["POS"] * rows,
            "event_time": pd.Series([NOW - timedelta(minutes=i) for i in range(rows)], dtype="datetime64[ns, UTC]"),
        }
    )
    required = ["event_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "event_time"]
    for position, column in enumerate(required):
        frame.loc[position, column] = None
    frame.loc[8, "amount"] = -3.0
    frame.loc[9, "currency"] = "XXQ"
    frame.loc[10, "country"] = "ZZ"
    frame.loc[11, "channel"] = "WEB"
    frame.loc[12, "event_time"] = pd.Timestamp(NOW + timedelta(days=3))
    return frame


def gx_result(frame: pd.DataFrame) -> dict[str, Any]:
    """GX's whole result for the suite on ``frame``, as JSON (ids and run times left out)."""
    validator = get_validator()
    batch = validator._batch_definition.get_batch(batch_parameters={"dataframe": validator.prepare_frame(frame)})
    result = batch.validate(
        validator.suite.suite,
        result_format=dict(RESULT_FORMAT),
        expectation_parameters={VALIDATION_TIME_PARAMETER: NOW},
    ).to_json_dict()
    for item in result["results"]:
        item["expectation_config"].pop("id", None)
    return {"success": result["success"], "statistics": result["statistics"], "results": result["results"]}


def test_gx_results_are_identical_with_and_without_the_memo() -> None:
    assert install()
    frame = every_rule_broken()
    shipped = gx_result(frame)
    with memoised_configurations():
        memoised = gx_result(frame)
    assert memoised == shipped
    unexpected = [item["result"]["unexpected_index_list"] for item in shipped["results"]]
    assert all(unexpected), "each expectation fails on some row, so the comparison covers every rule's result"


def test_the_memo_returns_one_configuration_per_expectation_only_inside_the_block() -> None:
    assert install()
    expectation = get_validator().suite.suite.expectations[0]
    assert expectation.configuration is not expectation.configuration  # GX as shipped: built on each access
    with memoised_configurations():
        inside = expectation.configuration
        assert expectation.configuration is inside
        seen_elsewhere: list[bool] = []
        other = threading.Thread(target=lambda: seen_elsewhere.append(expectation.configuration is inside))
        other.start()
        other.join()
        assert seen_elsewhere == [False]  # another thread is not memoised
    assert expectation.configuration is not inside
    assert expectation.configuration == inside


def test_domain_objects_and_argument_ids_are_built_once_per_object_only_inside_the_block() -> None:
    from great_expectations.core.id_dict import IDDict

    assert install()
    configuration = get_validator().suite.suite.expectations[0].configuration
    assert configuration.to_domain_obj() is not configuration.to_domain_obj()
    codes = ["DE", "FR"]
    arguments = IDDict({"column": "country", "value_set": codes})
    shipped_id = arguments.to_id()
    with memoised_configurations():
        inside = configuration.to_domain_obj()
        assert configuration.to_domain_obj() is inside
        assert arguments.to_id() == shipped_id
        assert IDDict({"column": "country", "value_set": codes}).to_id() == shipped_id  # same objects, same id
        assert IDDict({"column": "currency", "value_set": codes}).to_id() != shipped_id  # another object, its own id
    assert configuration.to_domain_obj() is not inside
    codes.append("IT")
    assert arguments.to_id() != shipped_id  # outside the block nothing is remembered


def test_validation_verdicts_use_the_memo_and_stay_exact() -> None:
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    validator = get_validator()
    memo_module = "pipelines.validation.gx_memo"
    assert Expectation.__dict__["configuration"].fget.__module__ == memo_module
    assert ExpectationConfiguration.to_domain_obj.__module__ == memo_module
    assert IDDict.to_id.__module__ == memo_module
    verdicts = validator.validate(every_rule_broken(), now=NOW)
    assert verdicts.invalid_positions == list(range(13))
    assert verdicts.valid.tolist() == [False] * 13 + [True]
