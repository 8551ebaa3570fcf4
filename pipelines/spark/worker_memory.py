"""A dict that lives as long as the Python worker process that runs a task, for data kept across micro-batches.

Spark pickles a task's functions (a stateful processor included) by value with every task, so an attribute of
them, or a module-level dict of a module pickled by value, starts empty each time. Spark reuses its Python worker
processes across tasks, and a module registered in ``sys.modules`` stays for the whole process: a dict hung on it
outlives the task. What is kept there is a cache only, never the durable copy, since a worker may exit any time.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def worker_process_dict(name: str) -> dict[Any, Any]:
    """The process-wide dict registered under ``name`` (a module name no real module uses), created empty once."""
    module = sys.modules.setdefault(name, types.ModuleType(name))
    kept: dict[Any, Any] = module.__dict__.setdefault("kept", {})
    return kept
