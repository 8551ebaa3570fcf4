"""The latest-chunk files: what one worker leaves is what another reads, and any failure reads as nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.spark import latest_chunks
from pipelines.spark.latest_chunks import LatestChunk, LatestChunks


def test_a_published_chunk_is_read_back_whole_and_replaced_by_the_next(tmp_path: Path) -> None:
    files = LatestChunks(tmp_path / "chunks")
    assert files.read("card-0") is None  # nothing written yet
    first = LatestChunk("t1", "", b"\x00\n\xffbytes with a newline\n")
    files.publish("card-0", first)
    assert files.read("card-0") == first
    second = LatestChunk("t2", "t1", b"next")
    files.publish("card-0", second)
    assert files.read("card-0") == second
    assert files.read("card-1") is None  # one file per group
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == ["card-0"]  # no temporary file left


def test_an_unreadable_or_unwritable_file_reads_as_nothing(tmp_path: Path) -> None:
    (tmp_path / "card-0").write_bytes(b"no separators")
    assert LatestChunks(tmp_path).read("card-0") is None
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    unwritable = LatestChunks(blocker / "chunks")
    unwritable.publish("card-0", LatestChunk("t1", "", b"x"))  # swallowed: a cache only
    assert unwritable.read("card-0") is None


def test_a_chunk_too_large_to_share_removes_the_older_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = LatestChunks(tmp_path)
    files.publish("card-0", LatestChunk("t1", "", b"small"))
    monkeypatch.setattr(latest_chunks, "MAX_SHARED_CHUNK_BYTES", 4)
    files.publish("card-0", LatestChunk("t2", "t1", b"too large"))
    assert files.read("card-0") is None
