"""Keep the suite's embedded code lists equal to the reference files in ``schemas/reference/``.

The suite embeds its value sets, so it is complete on its own (GX loads it with nothing else, executors get
it as one string). The generator reads the same codes from ``schemas/reference/*.txt`` (one code a line).
An expectation that mirrors such a file says so in ``meta.featurestream.reference_list`` (a path relative
to the suite file); this module finds
those, reports drift, and rewrites the value sets from the files:

    python -m pipelines.validation.reference            # exit 1 and list the drift, if any
    python -m pipelines.validation.reference --write    # copy the files' codes into the suite
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.validation.errors import SuiteLoadError
from pipelines.validation.suite import META_KEY, TRANSACTIONS_SUITE_PATH


@dataclass(frozen=True)
class ReferenceBinding:
    """One expectation whose ``value_set`` must equal the codes of one reference file."""

    position: int
    column: str
    path: Path
    value_set: tuple[str, ...]

    def file_codes(self) -> tuple[str, ...]:
        return read_reference_codes(self.path)

    def in_sync(self) -> bool:
        return sorted(self.value_set) == sorted(self.file_codes())


def read_reference_codes(path: Path) -> tuple[str, ...]:
    """Codes of a reference file: one per line, blank lines and ``#`` comments ignored, order kept."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SuiteLoadError(f"cannot read reference list {path}: {exc.strerror}") from exc
    return tuple(code for line in lines if (code := line.strip()) and not code.startswith("#"))


def reference_bindings(suite_path: Path = TRANSACTIONS_SUITE_PATH) -> list[ReferenceBinding]:
    """Expectations of the suite file that declare a reference list (read as plain JSON, not through GX)."""
    document = _read_document(suite_path)
    bindings = []
    for position, expectation in enumerate(document.get("expectations", [])):
        reference = ((expectation.get("meta") or {}).get(META_KEY) or {}).get("reference_list")
        if reference is None:
            continue
        kwargs = expectation.get("kwargs", {})
        bindings.append(
            ReferenceBinding(
                position=position,
                column=str(kwargs.get("column")),
                path=suite_path.parent / str(reference),
                value_set=tuple(kwargs.get("value_set") or ()),
            )
        )
    return bindings


def sync_reference_lists(suite_path: Path = TRANSACTIONS_SUITE_PATH) -> list[str]:
    """Rewrite drifted value sets from their files (sorted); returns the columns that changed."""
    document = _read_document(suite_path)
    changed = []
    for binding in reference_bindings(suite_path):
        if binding.in_sync():
            continue
        document["expectations"][binding.position]["kwargs"]["value_set"] = sorted(binding.file_codes())
        changed.append(binding.column)
    if changed:
        suite_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def _read_document(suite_path: Path) -> dict[str, Any]:
    try:
        document = json.loads(suite_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteLoadError(f"cannot read expectation suite {suite_path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SuiteLoadError(f"{suite_path} is not a JSON object")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", type=Path, default=TRANSACTIONS_SUITE_PATH)
    parser.add_argument("--write", action="store_true", help="rewrite drifted value sets from the files")
    args = parser.parse_args(argv)
    if args.write:
        changed = sync_reference_lists(args.suite)
        print(f"updated value sets of: {', '.join(changed)}" if changed else "already in sync")
        return 0
    drifted = [binding for binding in reference_bindings(args.suite) if not binding.in_sync()]
    for binding in drifted:
        missing = sorted(set(binding.file_codes()) - set(binding.value_set))
        extra = sorted(set(binding.value_set) - set(binding.file_codes()))
        print(f"{binding.column}: suite lacks {missing}, suite has extra {extra} (vs {binding.path})")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
