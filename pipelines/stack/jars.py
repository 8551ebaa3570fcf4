"""Where the pinned JVM artifacts live, and which of them a Spark job must be handed.

`make jars` copies them from Maven Central (infra/jvm/*/pom.xml) into ``stack.jars_dir``. Spark's connector
pulls in libraries that the pyspark wheel already ships (hadoop-client, snappy, lz4, ...); passing those
twice would put two versions of a class on one classpath, so only the jars pyspark lacks go to ``spark.jars``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.errors import ArtifactsMissingError

BROKER_JARS = "kafka-broker"
SPARK_CONNECTOR_JARS = "spark-connectors"

# The version is the first dash-separated tail that starts with a digit and has no underscore, so that
# Scala suffixes (spark-sql-kafka-0-10_2.13) stay in the artifact name and qualifiers (zstd-jni-1.5.6-10) do not.
_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[0-9A-Za-z.]*(?:-[0-9A-Za-z.]+)*)\.jar$")


def artifact_name(jar: Path) -> str:
    """``kafka-clients-3.9.0.jar`` -> ``kafka-clients``; an unversioned name is returned whole."""
    match = _VERSIONED_JAR.match(jar.name)
    return match.group("artifact") if match else jar.stem


def jar_folder(jars_dir: Path, kind: str) -> Path:
    """The folder of one artifact set, or a clear error telling how to fetch it."""
    folder = jars_dir / kind
    if not folder.is_dir() or not any(folder.glob("*.jar")):
        raise ArtifactsMissingError(f"no jars in {folder}: run `make jars` (fetches the pinned artifacts with mvn)")
    return folder


def spark_connector_jars(jars_dir: Path, pyspark_jars_dir: Path) -> list[Path]:
    """Connector jars whose artifact pyspark does not already provide, in a stable order."""
    shipped = {artifact_name(jar) for jar in pyspark_jars_dir.glob("*.jar")}
    folder = jar_folder(jars_dir, SPARK_CONNECTOR_JARS)
    return sorted(jar for jar in folder.glob("*.jar") if artifact_name(jar) not in shipped)


def pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"
