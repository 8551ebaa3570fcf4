"""The latest-chunk files: what workers leave is what another reads back, linked write to write, and any failure
reads as nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.spark import latest_chunks
from pipelines.spark.latest_chunks import KEPT_PER_GROUP, LatestChunk, LatestChunks


def _written(files: LatestChunks, group: str, count: int) -> list[str]:
    """``count`` writes to ``group``, each linked to the one before; their tokens."""
    tokens = [f"t{number}" for number in range(count)]
    for number, token in enumerate(tokens):
        files.publish(group, LatestChunk(token, tokens[number - 1] if number else "", f"chunk {number}\n".encode()))
    return tokens


def test_the_chunks_since_a_copy_are_read_back_in_write_order(tmp_path: Path) -> None:
    files = LatestChunks(tmp_path / "chunks")
    assert files.since("card-0", "t0", "") is None  # nothing written yet
    tokens = _written(files, "card-0", 3)
    assert files.read("card-0", "t0") == LatestChunk("t0", "", b"chunk 0\n")
    assert files.since("card-0", tokens[2], tokens[1]) == [b"chunk 2\n"]
    assert files.since("card-0", tokens[2], tokens[0]) == [b"chunk 1\n", b"chunk 2\n"]
    assert files.since("card-0", tokens[2], "") == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n"]
    assert files.since("card-0", tokens[2], "another copy") is None  # no link back to it
    assert files.since("card-0", "a rolled-back write", tokens[1]) is None
    assert files.since("card-1", tokens[2], tokens[1]) is None  # groups apart
    assert not [p for p in (tmp_path / "chunks").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_each_group_keeps_only_its_last_links(tmp_path: Path) -> None:
    files = LatestChunks(tmp_path)
    tokens = _written(files, "card-0", KEPT_PER_GROUP + 3)
    files.publish("card-0", LatestChunk("rolled-back", tokens[-2], b"never committed"))
    files.publish("card-0", LatestChunk("retried", tokens[-2], b"committed"))
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert kept == sorted(f"card-0.{token}" for token in ["retried", *tokens[-KEPT_PER_GROUP:-1]])
    oldest_kept = files.read("card-0", tokens[-KEPT_PER_GROUP])
    assert oldest_kept is not None
    assert files.since("card-0", "retried", oldest_kept.previous) is not None  # every chunk since it is here
    assert files.since("card-0", "retried", tokens[-KEPT_PER_GROUP - 2]) is None  # its next chunk was removed


def test_an_unreadable_or_unwritable_file_reads_as_nothing(tmp_path: Path) -> None:
    (tmp_path / "card-0.t1").write_bytes(b"no separators")
    assert LatestChunks(tmp_path).read("card-0", "t1") is None
    (tmp_path / "card-0.t2").write_bytes(b"t9\n\nnamed for another token")
    assert LatestChunks(tmp_path).read("card-0", "t2") is None
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    unwritable = LatestChunks(blocker / "chunks")
    unwritable.publish("card-0", LatestChunk("t1", "", b"x"))  # swallowed: a cache only
    assert unwritable.since("card-0", "t1", "") is None


def test_a_chunk_too_large_to_share_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = LatestChunks(tmp_path)
    files.publish("card-0", LatestChunk("t1", "", b"small"))
    monkeypatch.setattr(latest_chunks, "MAX_SHARED_CHUNK_BYTES", 4)
    files.publish("card-0", LatestChunk("t2", "t1", b"too large"))
    assert files.since("card-0", "t2", "t1") is None
