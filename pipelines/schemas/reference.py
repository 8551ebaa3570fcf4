"""The code lists valid records draw from (``schemas/reference/*.txt``, one code a line).

The generator picks currencies and countries from them and the expectation suite checks against the same
files, so "valid" means one thing on both sides.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pipelines.schemas.store import SCHEMAS_ROOT, SchemaError

REFERENCE_DIR = SCHEMAS_ROOT / "reference"


@lru_cache(maxsize=16)
def code_list(name: str, root: Path = REFERENCE_DIR) -> frozenset[str]:
    """The codes in ``<root>/<name>.txt``, e.g. ``code_list("currencies")``."""
    path = root / f"{name}.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SchemaError(f"cannot read reference list {path}: {exc.strerror}") from exc
    return frozenset(line.strip() for line in lines if line.strip())


def currencies() -> frozenset[str]:
    """ISO 4217 alphabetic codes."""
    return code_list("currencies")


def countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes."""
    return code_list("countries")
