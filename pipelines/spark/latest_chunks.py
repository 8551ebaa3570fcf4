"""The latest state chunk a Python worker wrote, left in a local file for the other workers on the same host.

A stateful group's history is kept by the Python worker that wrote it last
(:mod:`pipelines.spark.worker_memory`); Spark hands the group's next task to any idle worker, so with two workers
about half the calls find a copy one write behind. Such a worker needs only the chunk the other one appended, but
the state store can only hand over the whole chunk list (measured in the latency benchmark's last third: ~31 ms to
fetch a card bucket's list, against ~1 ms to decode the one chunk it needed). So each write also leaves its chunk
here, under the tokens of the write and of the write it follows; a worker whose copy carries that previous token,
and whose group's committed token (from the state store) is that write's, applies the chunk and skips the fetch.

Only a cache: the state store stays the durable copy and the one that decides. Tokens are random per write, so a
file left by a write that Spark rolled back, by another query or by a restarted job never matches a committed token.
Any error reading or writing a file just means the caller fetches from the state store. One file per group, each
replaced atomically (write, then rename), so the directory holds one small chunk per group and a reader never sees a
partial file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SEPARATOR = b"\n"
MAX_SHARED_CHUNK_BYTES = 1 << 20
"""Larger chunks (~100,000 events of one group in one batch and up, whose fetch the batch's own work dwarfs) are not
shared, so the directory stays small: at most this per group."""


@dataclass(frozen=True)
class LatestChunk:
    """A group's last written chunk: the write's token, the token of the write before it ('' for the first)."""

    token: str
    previous: str
    chunk: bytes


def default_directory() -> Path:
    """RAM-backed ``/dev/shm`` where it exists, else the temporary directory; per user, as files hold state."""
    shared_memory = Path("/dev/shm")
    base = (
        shared_memory if shared_memory.is_dir() and os.access(shared_memory, os.W_OK) else Path(tempfile.gettempdir())
    )
    return base / f"featurestream-latest-chunks-{os.getuid()}"


class LatestChunks:
    """Files of the latest chunk per group name, in ``directory`` (created on first write)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_directory()

    def publish(self, group: str, written: LatestChunk) -> None:
        """Replace ``group``'s file with ``written``; errors are swallowed (a cache, see the module)."""
        if len(written.chunk) > MAX_SHARED_CHUNK_BYTES:
            self.forget(group)  # tokens keep an older file from matching; it only takes room
            return
        pending: Path | None = None
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=f".{group}-", delete=False) as file:
                pending = Path(file.name)
                file.write(written.token.encode() + _SEPARATOR + written.previous.encode() + _SEPARATOR)
                file.write(written.chunk)
            pending.replace(self.directory / group)
            pending = None
        except OSError:
            return
        finally:
            if pending is not None:
                pending.unlink(missing_ok=True)

    def forget(self, group: str) -> None:
        """Remove ``group``'s file, if any."""
        try:
            (self.directory / group).unlink(missing_ok=True)
        except OSError:
            return

    def read(self, group: str) -> LatestChunk | None:
        """``group``'s latest chunk, or None if there is none or it cannot be read."""
        try:
            content = (self.directory / group).read_bytes()
        except OSError:
            return None
        token, separator, rest = content.partition(_SEPARATOR)
        previous, separator_2, chunk = rest.partition(_SEPARATOR)
        if not separator or not separator_2:
            return None
        return LatestChunk(token.decode(errors="replace"), previous.decode(errors="replace"), chunk)
