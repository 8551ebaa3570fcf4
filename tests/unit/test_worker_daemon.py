"""Which sys.path entries and cached importers the worker daemon drops."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
import zipimport
from importlib.machinery import ModuleSpec
from pathlib import Path

import pyspark

from pipelines.spark.worker_daemon import (
    drop_stale_zip_importers,
    forget_namespaces_in_archives,
    without_spark_archives,
)

SPARK_LIB = Path(pyspark.__file__).parent / "python" / "lib"
SPARK_CORE_JAR = str(Path(pyspark.__file__).parent / "jars" / "spark-core_2.13-4.0.0.jar")


def test_spark_archives_go_when_pyspark_is_installed() -> None:
    site = str(Path(pyspark.__file__).parent.parent)
    path = [str(SPARK_LIB / "pyspark.zip"), str(SPARK_LIB / "py4j-0.10.9.9-src.zip"), SPARK_CORE_JAR, site]
    assert without_spark_archives([*path, "/jobs/deps.zip"]) == [site, "/jobs/deps.zip"]  # a user's zip stays


def test_nothing_goes_when_pyspark_lives_only_in_the_zip() -> None:
    path = [str(SPARK_LIB / "pyspark.zip"), SPARK_CORE_JAR, "/nowhere"]
    assert without_spark_archives(path) == path


def test_importers_of_archives_off_the_path_are_forgotten(tmp_path: Path) -> None:
    kept, dropped = tmp_path / "kept.zip", tmp_path / "dropped.jar"
    for archive in (kept, dropped):
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("pkg/__init__.py", "")
    cache: dict[str, object] = {
        str(kept): zipimport.zipimporter(str(kept)),
        str(dropped): zipimport.zipimporter(str(dropped)),
        f"{dropped}/pkg": zipimport.zipimporter(f"{dropped}/pkg"),
        "/some/dir": None,
    }
    drop_stale_zip_importers(cache, [str(kept), "/some/dir"])
    assert sorted(cache) == sorted([str(kept), "/some/dir"])


def _namespace(name: str, *locations: str) -> object:
    spec = ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = list(locations)
    return importlib.util.module_from_spec(spec)


def test_namespace_packages_found_only_in_dropped_archives_are_forgotten() -> None:
    jar = SPARK_CORE_JAR
    modules: dict[str, object] = {
        "org": _namespace("org", f"{jar}/org"),  # what copy's Jython probe leaves behind
        "shared": _namespace("shared", f"{jar}/shared", "/site/shared"),  # also on disk: kept
        "zipimport": zipimport,  # a regular module: kept
    }
    forget_namespaces_in_archives(modules, {jar, str(SPARK_LIB / "pyspark.zip")})
    assert sorted(modules) == ["shared", "zipimport"]


def test_nested_namespace_packages_of_a_dropped_jar_are_forgotten_together(tmp_path: Path) -> None:
    """``org`` and ``org.python`` both from a jar: the child's path is recomputed from the parent's, so the parent
    must still be there while the scan runs (a real import, in a fresh interpreter)."""
    import subprocess
    import sys

    jar = tmp_path / "core.jar"
    with zipfile.ZipFile(jar, "w") as zf:
        for directory in ("org/", "org/python/", "org/python/core/", "org/apache/"):  # jars list their folders
            zf.writestr(directory, b"")
        zf.writestr("org/python/core/Thing.class", b"")
        zf.writestr("org/apache/Other.class", b"")
    script = f"""
import sys
sys.path.insert(0, {str(jar)!r})
try:
    from org.python.core import PyStringMap  # what the standard library's copy module does
except ImportError:
    pass
assert "org.python" in sys.modules
from pipelines.spark.worker_daemon import forget_namespaces_in_archives
sys.path.remove({str(jar)!r})
forget_namespaces_in_archives(sys.modules, {{{str(jar)!r}}})
assert "org" not in sys.modules and "org.python" not in sys.modules, sorted(n for n in sys.modules if "org" in n)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_forked_worker_prints_its_stacks_on_the_signal_and_carries_on() -> None:
    """Registered in the daemon, inherited by the workers it forks: where a stalled task waits, on request."""
    script = """
import os, signal, sys, time
from pipelines.spark.worker_daemon import STACK_DUMP_SIGNAL, dump_stacks_on_signal
dump_stacks_on_signal()
child = os.fork()
if child == 0:
    def waiting_in_a_task():
        os.kill(os.getpid(), STACK_DUMP_SIGNAL)
        time.sleep(0.2)
        print("carried on", flush=True)
    waiting_in_a_task()
    os._exit(0)
os.waitpid(child, 0)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "waiting_in_a_task" in done.stderr  # the stack, on stderr (the executor's log)
    assert "carried on" in done.stdout
