"""The schemas in schemas/: layout, fingerprints, and the compatibility check (library and CLI)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from fastavro.schema import fingerprint
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.schemas.compatibility import CompatibilityMode, check_history, schema_problems
from pipelines.schemas.store import SCHEMAS_ROOT, SchemaError, SchemaStore, fingerprint_of, load_store

SUBJECTS = ["alerts", "dead_letter", "labels", "scores", "transactions"]


def test_every_subject_is_there_with_namespace_and_field_docs() -> None:
    store = load_store()
    assert store.subjects() == SUBJECTS
    for schema in store:
        assert schema.definition["namespace"] == "io.featurestream"
        assert schema.definition.get("doc")
        for field in schema.definition["fields"]:
            assert field.get("doc"), f"{schema.subject} v{schema.version}: field {field['name']} has no doc"


def test_the_current_schema_is_the_highest_version() -> None:
    store = load_store()
    assert [v.version for v in store.versions("transactions")] == [1, 2]
    assert store.latest("transactions").version == 2
    assert "device_id" in [f["name"] for f in store.latest("transactions").definition["fields"]]


def test_transactions_fields_and_types() -> None:
    fields = {f["name"]: f["type"] for f in load_store().version("transactions", 1).definition["fields"]}
    assert list(fields) == [
        "event_id", "card_id", "merchant_id", "amount", "currency", "mcc", "country", "channel", "event_time",
    ]  # fmt: skip
    assert fields["amount"] == "double"
    assert fields["channel"]["symbols"] == ["POS", "ECOM", "ATM"]
    assert fields["event_time"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_fingerprint_is_crc64_avro_of_the_canonical_form_little_endian() -> None:
    # The Avro spec's test vector: fingerprint64("null") = 0x63dd24e7cc258f8a.
    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (0x63DD24E7CC258F8A).to_bytes(8, "little")
    schema = load_store().latest("transactions")
    assert "logicalType" not in schema.canonical_form and "doc" not in schema.canonical_form
    assert fingerprint_of(schema.definition)[1] == schema.fingerprint
    assert load_store().by_fingerprint(schema.fingerprint) == schema


def test_a_gap_in_the_version_history_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "things").mkdir()
    shutil.copy(SCHEMAS_ROOT / "labels" / "v1.avsc", tmp_path / "things" / "v1.avsc")
    shutil.copy(SCHEMAS_ROOT / "labels" / "v1.avsc", tmp_path / "things" / "v3.avsc")
    with pytest.raises(SchemaError, match="without gaps"):
        SchemaStore(tmp_path)


def test_an_invalid_schema_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "things").mkdir()
    (tmp_path / "things" / "v1.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        SchemaStore(tmp_path)


@pytest.mark.parametrize("mode", list(CompatibilityMode))
def test_the_repository_history_is_compatible_in_every_mode(mode: CompatibilityMode) -> None:
    store = load_store()
    for subject in store.subjects():
        assert all(report.compatible for report in check_history(store.versions(subject), mode))


def _transactions_v2() -> dict:
    return copy.deepcopy(dict(load_store().latest("transactions").definition))


def test_adding_a_field_without_default_breaks_backward_only() -> None:
    new = _transactions_v2()
    new["fields"].append({"name": "risk_band", "type": "string", "doc": "x"})
    old = _transactions_v2()
    assert schema_problems(new, old, CompatibilityMode.BACKWARD)
    assert not schema_problems(new, old, CompatibilityMode.FORWARD)
    assert schema_problems(new, old, CompatibilityMode.FULL)
    assert not schema_problems(new, old, CompatibilityMode.NONE)
    assert "risk_band" in schema_problems(new, old, CompatibilityMode.BACKWARD)[0]


def test_removing_a_field_without_default_breaks_forward_only() -> None:
    old = _transactions_v2()
    new = _transactions_v2()
    new["fields"] = [f for f in new["fields"] if f["name"] != "mcc"]
    assert not schema_problems(new, old, CompatibilityMode.BACKWARD)
    assert "mcc" in schema_problems(new, old, CompatibilityMode.FORWARD)[0]


def test_type_changes_follow_avro_promotion_rules() -> None:
    old = _transactions_v2()
    widened = _transactions_v2()
    for field in widened["fields"]:
        if field["name"] == "amount":
            field["type"] = "string"
    assert schema_problems(widened, old, CompatibilityMode.BACKWARD)  # double cannot be read as string
    dropped_symbol = _transactions_v2()
    for field in dropped_symbol["fields"]:
        if field["name"] == "channel":
            field["type"]["symbols"] = ["POS", "ECOM"]
    assert schema_problems(dropped_symbol, old, CompatibilityMode.BACKWARD)  # old ATM records unreadable
    assert not schema_problems(dropped_symbol, old, CompatibilityMode.FORWARD)


def test_cli_check_passes_on_the_repository() -> None:
    result = CliRunner().invoke(app, ["schemas", "check"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "INCOMPATIBLE" not in result.output


def test_cli_check_rejects_an_incompatible_new_version(tmp_path: Path) -> None:
    shutil.copytree(SCHEMAS_ROOT / "transactions", tmp_path / "transactions")
    v3 = _transactions_v2()
    v3["fields"].append({"name": "risk_band", "type": "string", "doc": "required and without default"})
    (tmp_path / "transactions" / "v3.avsc").write_text(json.dumps(v3))
    runner = CliRunner()
    result = runner.invoke(app, ["schemas", "check", "transactions", "--root", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "INCOMPATIBLE" in result.output and "risk_band" in result.output
    # The same change passes when only FORWARD compatibility is required.
    forward = ["schemas", "check", "transactions", "--root", str(tmp_path), "--mode", "FORWARD"]
    assert runner.invoke(app, forward).exit_code == 0


def test_cli_list_shows_fingerprints() -> None:
    result = CliRunner().invoke(app, ["schemas", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert load_store().latest("transactions").fingerprint.hex() in result.output
