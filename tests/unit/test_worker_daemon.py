"""Which sys.path entries the worker daemon drops."""

from __future__ import annotations

from pathlib import Path

import pyspark

from pipelines.spark.worker_daemon import without_spark_zips

SPARK_LIB = Path(pyspark.__file__).parent / "python" / "lib"


def test_spark_zips_go_when_pyspark_is_installed() -> None:
    site = str(Path(pyspark.__file__).parent.parent)
    path = [str(SPARK_LIB / "pyspark.zip"), str(SPARK_LIB / "py4j-0.10.9.9-src.zip"), site, "/jobs/deps.zip"]
    assert without_spark_zips(path) == [site, "/jobs/deps.zip"]  # a user's own zip stays


def test_nothing_goes_when_pyspark_lives_only_in_the_zip() -> None:
    path = [str(SPARK_LIB / "pyspark.zip"), "/nowhere"]
    assert without_spark_zips(path) == path
