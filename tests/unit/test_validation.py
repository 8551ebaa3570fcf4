"""Row verdicts come from GX: each rule of the transactions suite catches its violation, on the right row.

GX runs for real here (pandas engine, no JVM). The validator is cached per process, so GX's start-up is paid
once for the whole module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.validation import (
    REASONS_COLUMN,
    VALID_COLUMN,
    InputFrameError,
    RowVerdicts,
    get_validator,
    validate_batches_for_spark,
    validate_frame_for_spark,
    validate_rows,
)
from pipelines.validation.suite import read_suite_json

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REQUIRED = ("event_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "event_time")

BETWEEN_AMOUNT = "expect_column_values_to_be_between(amount)"
BETWEEN_EVENT_TIME = "expect_column_values_to_be_between(event_time)"
IN_SET_CURRENCY = "expect_column_values_to_be_in_set(currency)"
IN_SET_COUNTRY = "expect_column_values_to_be_in_set(country)"
IN_SET_CHANNEL = "expect_column_values_to_be_in_set(channel)"


def not_null(column: str) -> str:
    return f"expect_column_values_to_not_be_null({column})"


def transactions(n: int, *, start: int = 0) -> pd.DataFrame:
    """``n`` valid decoded transactions, shaped as the streaming job hands them over."""
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "event_id": [f"evt-{i}" for i in ids],
            "card_id": [f"card-{i % 7}" for i in ids],
            "merchant_id": [f"m-{i % 3}" for i in ids],
            "amount": [12.5 + i for i in ids],
            "currency": ["EUR", "USD", "GBP"] * (n // 3) + ["EUR"] * (n % 3),
            "mcc": ["5411"] * n,
            "country": ["DE", "US", "GB"] * (n // 3) + ["FR"] * (n % 3),
            "channel": ["POS", "ECOM", "ATM"] * (n // 3) + ["POS"] * (n % 3),
            "event_time": pd.Series([NOW - timedelta(minutes=i) for i in ids], dtype="datetime64[ns, UTC]"),
        }
    )


def with_value(df: pd.DataFrame, row: int, column: str, value: Any) -> pd.DataFrame:
    out = df.copy()
    if value is None and out[column].dtype == object:
        out[column] = out[column].astype(object)
    out.loc[row, column] = value
    return out


def only_failure(verdicts: RowVerdicts) -> tuple[int, tuple[str, ...]]:
    assert len(verdicts.failures) == 1, verdicts.failures
    return next(iter(verdicts.failures.items()))


def test_valid_rows_pass() -> None:
    verdicts = validate_rows(transactions(30), now=NOW)
    assert verdicts.valid.tolist() == [True] * 30
    assert verdicts.failures == {}
    assert verdicts.failed_expectations == [[]] * 30
    assert verdicts.summary.success
    assert verdicts.summary.evaluated_rows == verdicts.summary.valid_rows == 30


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("amount", -5.0, BETWEEN_AMOUNT),
        ("amount", 0.0, BETWEEN_AMOUNT),  # strictly positive
        ("amount", 50_000.01, BETWEEN_AMOUNT),
        ("amount", 9.9e12, BETWEEN_AMOUNT),
        ("currency", "XXQ", IN_SET_CURRENCY),
        ("currency", "eur", IN_SET_CURRENCY),
        ("country", "ZZ", IN_SET_COUNTRY),
        ("country", "DEU", IN_SET_COUNTRY),
        ("channel", "WEB", IN_SET_CHANNEL),
        ("channel", "pos", IN_SET_CHANNEL),
    ],
)
def test_each_rule_catches_its_violation(column: str, value: Any, reason: str) -> None:
    verdicts = validate_rows(with_value(transactions(9), 4, column, value), now=NOW)
    assert only_failure(verdicts) == (4, (reason,))
    assert verdicts.valid.tolist() == [True] * 4 + [False] + [True] * 4


def test_bounds_are_inclusive_where_the_rule_says_so() -> None:
    df = with_value(transactions(3), 0, "amount", 50_000.0)
    df = with_value(df, 1, "event_time", pd.Timestamp(NOW + timedelta(days=1)))
    assert validate_rows(df, now=NOW).failures == {}


def test_event_time_later_than_now_plus_one_day_fails() -> None:
    late = pd.Timestamp(NOW + timedelta(days=1, milliseconds=1))
    verdicts = validate_rows(with_value(transactions(5), 2, "event_time", late), now=NOW)
    assert only_failure(verdicts) == (2, (BETWEEN_EVENT_TIME,))


def test_the_future_bound_moves_with_now() -> None:
    df = with_value(transactions(5), 2, "event_time", pd.Timestamp(NOW + timedelta(days=3)))
    assert not validate_rows(df, now=NOW).valid[2]
    assert validate_rows(df, now=NOW + timedelta(days=2)).valid[2]


@pytest.mark.parametrize("column", REQUIRED)
def test_a_null_required_field_fails_only_its_not_null_expectation(column: str) -> None:
    df = transactions(6)
    if column == "amount":
        df.loc[3, column] = np.nan
    elif column == "event_time":
        df.loc[3, column] = pd.NaT
    else:
        df.loc[3, column] = None
    verdicts = validate_rows(df, now=NOW)
    # Between and in-set rules skip nulls (GX filters them), so a null is reported once, by not-null.
    assert only_failure(verdicts) == (3, (not_null(column),))
    assert all(outcome.error is None for outcome in verdicts.summary.expectations)


def test_mixed_batch_gives_exact_rows_and_every_failed_rule_in_suite_order() -> None:
    df = transactions(12)
    df.loc[1, "amount"] = -1.0
    df.loc[4, "currency"] = "XXQ"
    df.loc[4, "country"] = "ZZ"
    df.loc[7, "event_time"] = pd.Timestamp(NOW + timedelta(days=30))
    df.loc[9, "card_id"] = None
    df.loc[11, "channel"] = "WEB"
    df.loc[11, "amount"] = 1e9
    df.index = pd.Index([f"k{i}" for i in range(12)])  # any index: verdicts are by position

    verdicts = validate_rows(df, now=NOW)

    assert verdicts.invalid_positions == [1, 4, 7, 9, 11]
    assert dict(verdicts.failures) == {
        1: (BETWEEN_AMOUNT,),
        4: (IN_SET_CURRENCY, IN_SET_COUNTRY),
        7: (BETWEEN_EVENT_TIME,),
        9: (not_null("card_id"),),
        11: (BETWEEN_AMOUNT, IN_SET_CHANNEL),
    }
    assert verdicts.valid.sum() + len(verdicts.failures) == len(df)  # conservation
    assert verdicts.reasons()[4] == f"{IN_SET_CURRENCY}; {IN_SET_COUNTRY}"
    assert verdicts.reasons()[0] == ""
    counts = verdicts.summary.unexpected_counts
    assert counts[BETWEEN_AMOUNT] == 2
    assert counts[IN_SET_CHANNEL] == 1
    assert counts[not_null("event_id")] == 0
    assert not verdicts.summary.success
    assert verdicts.summary.invalid_rows == 5


def test_empty_frame() -> None:
    verdicts = validate_rows(transactions(0), now=NOW)
    assert len(verdicts) == 0
    assert verdicts.failures == {}
    assert verdicts.summary.evaluated_rows == 0
    assert verdicts.summary.success
    out = validate_frame_for_spark(transactions(0), now=NOW)
    assert list(out.columns) == [*transactions(0).columns, VALID_COLUMN, REASONS_COLUMN]
    assert len(out) == 0


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda s: s.dt.as_unit("ms"), id="datetime64[ms, UTC]"),
        pytest.param(lambda s: s.dt.tz_convert("Europe/Berlin"), id="other zone"),
        pytest.param(lambda s: s.dt.tz_localize(None), id="naive UTC (what Spark hands over)"),
        pytest.param(lambda s: s.dt.as_unit("ms").astype("int64"), id="epoch millis"),
        pytest.param(lambda s: s.dt.as_unit("ms").astype("int64").astype("Int64"), id="nullable epoch millis"),
    ],
)
def test_event_time_representations(convert: Callable[[pd.Series], pd.Series]) -> None:
    df = with_value(transactions(4), 1, "event_time", pd.Timestamp(NOW + timedelta(days=2)))
    df["event_time"] = convert(df["event_time"])
    assert only_failure(validate_rows(df, now=NOW)) == (1, (BETWEEN_EVENT_TIME,))


def test_epoch_millis_nulls_and_absurd_values_reach_gx_instead_of_crashing() -> None:
    df = transactions(4)
    df["event_time"] = pd.array([1_700_000_000_000, None, 2**62, -(2**62)], dtype="Int64")
    verdicts = validate_rows(df, now=NOW)
    assert dict(verdicts.failures) == {1: (not_null("event_time"),), 2: (BETWEEN_EVENT_TIME,)}


def test_amount_types_are_brought_to_float64() -> None:
    df = transactions(3)
    df["amount"] = pd.array([5, -1, None], dtype="Int64")
    verdicts = validate_rows(df, now=NOW)
    assert dict(verdicts.failures) == {1: (BETWEEN_AMOUNT,), 2: (not_null("amount"),)}


def test_string_columns_may_be_arrow_backed() -> None:
    df = with_value(transactions(6), 5, "currency", "XXQ")
    df = df.astype({column: "string[pyarrow]" for column in ("event_id", "currency", "country", "channel")})
    df.loc[2, "event_id"] = None
    assert dict(validate_rows(df, now=NOW).failures) == {2: (not_null("event_id"),), 5: (IN_SET_CURRENCY,)}


def test_validation_does_not_modify_the_input() -> None:
    df = transactions(5)
    df["event_time"] = df["event_time"].dt.tz_localize(None)
    before = df.copy()
    validate_rows(df, now=NOW)
    validate_frame_for_spark(df, now=NOW)
    pd.testing.assert_frame_equal(df, before)


def test_missing_column_is_a_setup_error_not_a_verdict() -> None:
    with pytest.raises(InputFrameError, match="country"):
        validate_rows(transactions(3).drop(columns=["country"]), now=NOW)


def test_unusable_dtype_is_a_setup_error() -> None:
    df = transactions(2)
    df["amount"] = ["12.5", "twelve"]
    with pytest.raises(InputFrameError, match="amount"):
        validate_rows(df, now=NOW)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(InputFrameError, match="timezone-aware"):
        validate_rows(transactions(2), now=datetime(2025, 3, 1, 12, 0))


def test_summary_is_json_with_per_expectation_counts() -> None:
    df = with_value(transactions(4), 0, "amount", -3.0)
    document = json.loads(validate_rows(df, now=NOW).summary.to_json())
    assert document["suite_name"] == "transactions"
    assert document["evaluated_rows"] == 4
    assert document["valid_rows"] == 3
    assert document["invalid_rows"] == 1
    assert document["success"] is False
    assert document["validation_time"] == "2025-03-01T12:00:00+00:00"
    by_name = {outcome["name"]: outcome for outcome in document["expectations"]}
    assert len(by_name) == 13
    assert by_name[BETWEEN_AMOUNT] == {
        "name": BETWEEN_AMOUNT,
        "type": "expect_column_values_to_be_between",
        "columns": ["amount"],
        "success": False,
        "unexpected_count": 1,
        "error": None,
    }


def test_validate_frame_for_spark_appends_the_verdict_columns() -> None:
    df = with_value(transactions(5), 3, "country", "ZZ")
    df = with_value(df, 3, "channel", "WEB")
    out = validate_frame_for_spark(df, now=NOW)
    assert list(out.columns) == [*df.columns, VALID_COLUMN, REASONS_COLUMN]
    assert out[VALID_COLUMN].dtype == bool
    assert out[VALID_COLUMN].tolist() == [True, True, True, False, True]
    assert out[REASONS_COLUMN].tolist() == ["", "", "", f"{IN_SET_COUNTRY}; {IN_SET_CHANNEL}", ""]
    pd.testing.assert_frame_equal(out[df.columns], df)


def test_spark_iterator_joins_small_batches_and_keeps_every_row_in_order() -> None:
    chunks = [transactions(4, start=0), transactions(4, start=4), transactions(4, start=8), transactions(3, start=12)]
    chunks[1].loc[2, "amount"] = -1.0  # event 6
    chunks[3].loc[0, "currency"] = "XXQ"  # event 12
    out = list(validate_batches_for_spark(iter(chunks), now=NOW, max_rows=8))
    assert [len(frame) for frame in out] == [8, 7]  # 4+4 | 4+3: at most max_rows per GX call
    joined = pd.concat(out, ignore_index=True)
    assert joined["event_id"].tolist() == [f"evt-{i}" for i in range(15)]
    assert joined.loc[~joined[VALID_COLUMN], "event_id"].tolist() == ["evt-6", "evt-12"]
    assert joined[VALID_COLUMN].sum() == 13


def test_spark_iterator_passes_an_oversized_batch_whole() -> None:
    out = list(validate_batches_for_spark([transactions(10), transactions(2, start=10)], now=NOW, max_rows=4))
    assert [len(frame) for frame in out] == [10, 2]


def test_expectation_gx_cannot_evaluate_dead_letters_the_whole_batch() -> None:
    """A rule GX fails to run on a batch must not let that batch's rows through unchecked."""
    document = json.loads(read_suite_json())
    document["name"] = "broken_between"
    document["meta"]["featurestream"]["column_types"]["mcc"] = "string"
    document["expectations"].append(
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "mcc", "min_value": 0, "max_value": 9}}
    )
    df = transactions(3)
    df["mcc"] = pd.Series(["5411", 7, "x"], dtype=object)  # mixed types: GX's comparison raises inside its metric
    verdicts = validate_rows(df, now=NOW, suite_json=json.dumps(document))
    assert verdicts.valid.tolist() == [False, False, False]
    assert verdicts.failures[0] == ("expect_column_values_to_be_between(mcc) (error)",)
    outcome = {o.name: o for o in verdicts.summary.expectations}["expect_column_values_to_be_between(mcc)"]
    assert outcome.error
    assert outcome.unexpected_count == 3


def test_validator_is_built_once_per_process() -> None:
    assert get_validator() is get_validator()
    assert get_validator(read_suite_json()) is get_validator(read_suite_json())


def test_gx_shown_only_the_checked_columns_with_a_positional_index() -> None:
    df = transactions(3)
    df.index = pd.Index([7, 7, 9])
    frame = get_validator().prepare_frame(df)
    assert list(frame.columns) == list(REQUIRED)
    assert isinstance(frame.index, pd.RangeIndex)
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"


def test_ephemeral_gx_writes_no_files(tmp_path: Path) -> None:
    """GX must leave the working directory (the repo, for the job) and the home directory alone."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "from datetime import UTC, datetime\n"
        "import pandas as pd\n"
        "from pipelines.validation import validate_rows\n"
        "df = pd.DataFrame({c: ['x'] for c in ['event_id','card_id','merchant_id','currency','country','channel']})\n"
        "df['amount'] = [1.0]\n"
        "df['event_time'] = [datetime.now(UTC)]\n"
        "print(validate_rows(df, now=datetime.now(UTC)).failures)\n"
    )
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["home", "work"]
