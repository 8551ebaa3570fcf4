"""The suite file is GX's own format, loads in GX as it is, and its code lists equal schemas/reference/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.validation import SuiteLoadError, load_suite, read_suite_json
from pipelines.validation.reference import main as reference_main
from pipelines.validation.reference import read_reference_codes, reference_bindings, sync_reference_lists
from pipelines.validation.suite import SCHEMAS_DIR, TRANSACTIONS_SUITE_PATH


def suite_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(read_suite_json())
    return document


def test_suite_file_loads_through_gx_own_store_serializer() -> None:
    """Exactly what GX's ExpectationsStore does with a stored suite: schema load, then ExpectationSuite(**)."""
    from great_expectations.core.expectation_suite import ExpectationSuite, expectationSuiteSchema

    suite = ExpectationSuite(**expectationSuiteSchema.loads(TRANSACTIONS_SUITE_PATH.read_text(encoding="utf-8")))
    assert suite.name == "transactions"
    assert len(suite.expectations) == len(suite_document()["expectations"]) == 13


def test_suite_round_trips_through_gx_serialization() -> None:
    from great_expectations.core.expectation_suite import ExpectationSuite

    loaded = load_suite(read_suite_json()).suite
    again = ExpectationSuite(**json.loads(json.dumps(loaded.to_json_dict())))
    assert again == loaded


def test_suite_states_every_rule_the_generator_breaks() -> None:
    by_name = {e.name: e for e in load_suite(read_suite_json()).expectations}
    for column in ("event_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "event_time"):
        assert f"expect_column_values_to_not_be_null({column})" in by_name
    kwargs = {(e["type"], e["kwargs"]["column"]): e["kwargs"] for e in suite_document()["expectations"]}
    assert kwargs[("expect_column_values_to_be_between", "amount")] == {
        "column": "amount",
        "min_value": 0.0,
        "max_value": 50000.0,
        "strict_min": True,
        "strict_max": False,
    }
    assert kwargs[("expect_column_values_to_be_in_set", "channel")]["value_set"] == ["POS", "ECOM", "ATM"]
    assert kwargs[("expect_column_values_to_be_between", "event_time")] == {
        "column": "event_time",
        "max_value": {"$PARAMETER": "validation_time + timedelta(days=1)"},
    }


@pytest.mark.parametrize(("column", "file"), [("currency", "currencies.txt"), ("country", "countries.txt")])
def test_embedded_code_lists_equal_the_reference_files(column: str, file: str) -> None:
    bindings = {binding.column: binding for binding in reference_bindings()}
    binding = bindings[column]
    assert binding.path == SCHEMAS_DIR / "reference" / file
    codes = read_reference_codes(binding.path)
    assert len(codes) == len(set(codes)) > 100
    assert sorted(binding.value_set) == sorted(codes), "run: python -m pipelines.validation.reference --write"
    assert len(binding.value_set) == len(set(binding.value_set))


def test_reference_command_reports_and_fixes_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "codes.txt").write_text("AA\nBB\n\nCC\n", encoding="utf-8")
    suite_path = tmp_path / "s.expectations.json"
    document = {
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "code", "value_set": ["AA", "ZZ"]},
                "meta": {"featurestream": {"reference_list": "reference/codes.txt"}},
            }
        ],
    }
    suite_path.write_text(json.dumps(document), encoding="utf-8")

    assert reference_main(["--suite", str(suite_path)]) == 1
    assert "suite lacks ['BB', 'CC'], suite has extra ['ZZ']" in capsys.readouterr().out
    assert sync_reference_lists(suite_path) == ["code"]
    assert json.loads(suite_path.read_text())["expectations"][0]["kwargs"]["value_set"] == ["AA", "BB", "CC"]
    assert reference_main(["--suite", str(suite_path)]) == 0


def broken(mutate: Any) -> str:
    document = suite_document()
    mutate(document)
    return json.dumps(document)


def _drop_column_types(document: dict[str, Any]) -> None:
    del document["meta"]["featurestream"]["column_types"]


def _drop_amount_bounds(document: dict[str, Any]) -> None:
    kwargs = document["expectations"][8]["kwargs"]
    assert kwargs["column"] == "amount"
    del kwargs["min_value"], kwargs["max_value"]


@pytest.mark.parametrize(
    ("suite_json", "message"),
    [
        pytest.param("{not json", "not a GX expectation suite", id="not json"),
        pytest.param(
            broken(lambda d: d["expectations"][0].update(type="expect_column_values_to_be_bogus")),
            "expect_column_values_to_be_bogus",
            id="unknown expectation type (GX would drop it silently)",
        ),
        pytest.param(broken(_drop_amount_bounds), "min_value and max_value cannot both be None", id="invalid kwargs"),
        pytest.param(
            broken(
                lambda d: d["expectations"].append(
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}
                )
            ),
            "not a row-level",
            id="table-level rule",
        ),
        pytest.param(
            broken(lambda d: d["expectations"][0]["kwargs"].update(column="evnt_id")),
            "does not declare",
            id="typo in a column",
        ),
        pytest.param(broken(_drop_column_types), "column_types", id="no column contract"),
        pytest.param(
            broken(lambda d: d["expectations"].append(dict(d["expectations"][0]))),
            "same reason",
            id="duplicate rule",
        ),
        pytest.param(broken(lambda d: d.update(expectations=[])), "no expectations", id="empty"),
    ],
)
def test_a_suite_rows_cannot_be_judged_by_is_rejected_at_load(suite_json: str, message: str) -> None:
    with pytest.raises(SuiteLoadError, match=message):
        load_suite(suite_json)


def test_a_suite_whose_parameter_cannot_be_resolved_fails_when_the_validator_starts() -> None:
    from pipelines.validation import SuiteValidator

    def unknown_parameter(document: dict[str, Any]) -> None:
        document["name"] = "unknown_parameter"
        document["expectations"][12]["kwargs"]["max_value"] = {"$PARAMETER": "batch_deadline"}

    with pytest.raises(SuiteLoadError, match="batch_deadline"):
        SuiteValidator(broken(unknown_parameter))
