"""spark-submit command lines for the jobs in jobs/, with the pinned jars and the project's Python.

`featurestream submit JOB` runs exactly what :func:`spark_submit_argv` returns, so the documented plain
spark-submit command and the CLI cannot drift apart (`featurestream submit JOB --print` shows it).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pyspark

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.errors import ConfigurationError
from pipelines.spark.session import spark_conf

JOBS_DIR = PROJECT_ROOT / "jobs"

# Set on the command line as flags rather than --conf, as spark-submit expects.
_FLAG_CONFS = {"spark.master": "--master", "spark.app.name": "--name", "spark.jars": "--jars"}


def job_file(job: str) -> Path:
    path = JOBS_DIR / f"{job}.py"
    if not path.is_file():
        available = sorted(p.stem for p in JOBS_DIR.glob("*.py") if not p.name.startswith("_"))
        raise ConfigurationError(f"no job named {job!r} in {JOBS_DIR}; available: {', '.join(available)}")
    return path


def spark_submit_executable() -> str:
    bundled = Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("spark-submit")
    if found is None:
        raise ConfigurationError("spark-submit not found: is pyspark installed in this environment?")
    return found


def spark_submit_argv(
    settings: Settings, job: str, job_args: Sequence[str] = (), *, master: str | None = None
) -> list[str]:
    conf = spark_conf(settings, master=master)
    argv = [spark_submit_executable()]
    for key, flag in _FLAG_CONFS.items():
        if conf.get(key):
            argv += [flag, conf[key]]
    argv += ["--driver-memory", conf.pop("spark.driver.memory")]
    for key, value in conf.items():
        if key not in _FLAG_CONFS:
            argv += ["--conf", f"{key}={value}"]
    return [*argv, str(job_file(job)), *job_args]
