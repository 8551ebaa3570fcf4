"""Load an expectation suite from its JSON file with GX's own serializer, and read our contract out of it.

The suite file (GX 1.x ``ExpectationSuite`` JSON) is the single source of truth for what a valid record is:
nothing here re-types a rule. What we add lives in the suite's own ``meta`` under ``featurestream``:

- ``meta.featurestream.column_types`` maps every column the suite checks to ``string``, ``double`` or
  ``timestamp``. GX compares like with like only when the dtypes are right (a naive timestamp against an aware
  bound raises, a float32 column falls off GX's vectorised path), so the validator brings each column to that
  type before GX sees it. It also catches a typo'd column name when the suite is loaded, not on live data.
- an expectation's ``meta.featurestream.reference_list`` names the file (relative to ``schemas/``) its
  ``value_set`` must equal; :mod:`pipelines.validation.reference` checks and re-syncs those lists.

Row verdicts need rules GX can answer per row, so only map expectations (one or more columns, judged row by
row) are accepted; a table-level rule such as a row count could not say which record to dead-letter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from pipelines.config import PROJECT_ROOT
from pipelines.validation.errors import SuiteLoadError

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

SCHEMAS_DIR = PROJECT_ROOT / "schemas"
TRANSACTIONS_SUITE_PATH = SCHEMAS_DIR / "transactions.expectations.json"
META_KEY = "featurestream"

ColumnType = Literal["string", "double", "timestamp"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)


@dataclass(frozen=True)
class SuiteExpectation:
    """One expectation of the suite as rows will name it: ``expect_column_values_to_be_between(amount)``."""

    name: str
    type: str
    columns: tuple[str, ...]
    description: str | None


@dataclass(frozen=True)
class LoadedSuite:
    """A GX suite plus what the validator needs to run it on row batches."""

    suite: ExpectationSuite
    expectations: tuple[SuiteExpectation, ...]
    column_types: Mapping[str, ColumnType]

    @property
    def name(self) -> str:
        return str(self.suite.name)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the expectations read, in first-use order: all GX is shown of a frame."""
        seen: dict[str, None] = {}
        for expectation in self.expectations:
            seen.update(dict.fromkeys(expectation.columns))
        return tuple(seen)

    @property
    def expectation_names(self) -> tuple[str, ...]:
        return tuple(expectation.name for expectation in self.expectations)


def expectation_name(expectation_type: str, kwargs: Mapping[str, Any]) -> str:
    """The reason string a failing row carries for one expectation: its GX type and the columns it reads."""
    return f"{expectation_type}({','.join(_domain_columns(kwargs))})"


def _domain_columns(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    if "column" in kwargs:
        return (str(kwargs["column"]),)
    if "column_A" in kwargs and "column_B" in kwargs:
        return (str(kwargs["column_A"]), str(kwargs["column_B"]))
    if "column_list" in kwargs:
        return tuple(str(column) for column in kwargs["column_list"])
    return ()


def read_suite_json(path: Path = TRANSACTIONS_SUITE_PATH) -> str:
    """The suite file's text, read on the driver so executors need no copy of ``schemas/`` (they get the text)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteLoadError(f"cannot read expectation suite {path}: {exc.strerror}") from exc


@lru_cache(maxsize=8)
def load_suite(suite_json: str) -> LoadedSuite:
    """Deserialize the suite with GX (as GX's own expectations store does) and check it can judge rows.

    Cached per text: an executor process builds each suite once, however many batches it validates.
    """
    from great_expectations.core.expectation_suite import ExpectationSuite, expectationSuiteSchema
    from marshmallow import ValidationError

    try:
        raw = json.loads(suite_json)
        suite_dict = expectationSuiteSchema.load(raw)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise SuiteLoadError(f"not a GX expectation suite: {exc}") from exc
    if not isinstance(raw, dict) or not raw.get("expectations"):
        raise SuiteLoadError("the expectation suite holds no expectations")

    # ExpectationSuite() logs and *drops* an expectation GX cannot build; a suite missing a rule would
    # silently pass bad rows, so the count must match and the first casualty is named.
    _gx_logger = logging.getLogger("great_expectations.core.expectation_suite")
    previous_level = _gx_logger.level
    _gx_logger.setLevel(logging.CRITICAL)
    try:
        suite = ExpectationSuite(**suite_dict)
    except Exception as exc:  # GX raises plain ValueError/pydantic errors for a bad name, meta, ...
        raise SuiteLoadError(f"GX rejected the expectation suite: {exc}") from exc
    finally:
        _gx_logger.setLevel(previous_level)
    if len(suite.expectations) != len(suite_dict["expectations"]):
        raise SuiteLoadError(_first_rejected_expectation(suite_dict["expectations"]))

    column_types = _column_types(suite.meta)
    expectations = tuple(_suite_expectation(expectation, column_types) for expectation in suite.expectations)
    names = [expectation.name for expectation in expectations]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SuiteLoadError(f"two expectations would give rows the same reason: {', '.join(duplicates)}")
    return LoadedSuite(suite=suite, expectations=expectations, column_types=column_types)


def _first_rejected_expectation(configs: list[dict[str, Any]]) -> str:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    for position, config in enumerate(configs):
        try:
            ExpectationConfiguration(**config).to_domain_obj()
        except Exception as exc:
            return f"GX cannot build expectation #{position} ({config.get('type')}): {exc}"
    return "GX dropped an expectation of the suite while loading it"


def _column_types(meta: Mapping[str, Any] | None) -> dict[str, ColumnType]:
    declared = ((meta or {}).get(META_KEY) or {}).get("column_types")
    if not isinstance(declared, dict) or not declared:
        raise SuiteLoadError(f"the suite's meta.{META_KEY}.column_types must map each checked column to a type")
    unknown = {column: kind for column, kind in declared.items() if kind not in COLUMN_TYPES}
    if unknown:
        raise SuiteLoadError(f"unknown column types {unknown}; known: {', '.join(COLUMN_TYPES)}")
    return {str(column): cast(ColumnType, kind) for column, kind in declared.items()}


def _suite_expectation(expectation: Any, column_types: Mapping[str, ColumnType]) -> SuiteExpectation:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    config = expectation.configuration
    name = expectation_name(config.type, config.kwargs)
    if not isinstance(expectation, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation):
        raise SuiteLoadError(f"{name} is not a row-level (map) expectation, so no row could be dead-lettered for it")
    columns = _domain_columns(config.kwargs)
    undeclared = [column for column in columns if column not in column_types]
    if undeclared:
        raise SuiteLoadError(f"{name} reads {undeclared}, which meta.{META_KEY}.column_types does not declare")
    return SuiteExpectation(name=name, type=config.type, columns=columns, description=expectation.description)
