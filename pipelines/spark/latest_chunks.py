"""The latest state chunks Python workers wrote, left in local files for the other workers on the same host.

A stateful group's history is kept by the Python worker that wrote it last
(:mod:`pipelines.spark.worker_memory`); Spark hands the group's next task to any idle worker, so with two workers
about half the calls find a copy a write or more behind. Such a worker needs only the chunks written since its
copy, but the state store can only hand over the whole chunk list (measured in the latency benchmark's last third:
~31 ms to fetch a card bucket's list, against ~1 ms to decode one chunk). So each write also leaves its chunk here,
in a file named by the write's token that names the write before it; a worker follows those links back from the
group's committed token (from the state store) to its copy's token, at most :data:`KEPT_PER_GROUP` writes, applies
the chunks and skips the fetch.

Only a cache: the state store stays the durable copy and the one that decides. Tokens are random per write, so a
file left by a write that Spark rolled back, by another query or by a restarted job is never reached from a
committed token. Any error reading or writing a file, or a link missing, just means the caller fetches from the
state store. Files are written atomically (write, then rename), so a reader never sees a partial one, and each
write removes its group's files that are not among its own last :data:`KEPT_PER_GROUP` links.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SEPARATOR = b"\n"
KEPT_PER_GROUP = 4
"""Writes a group's files go back: a worker whose copy is further behind reads the state store."""
MAX_SHARED_CHUNK_BYTES = 1 << 20
"""Larger chunks (~100,000 events of one group in one batch and up, whose fetch the batch's own work dwarfs) get no
file, so the directory stays small: at most this per file."""


@dataclass(frozen=True)
class LatestChunk:
    """A chunk a group's write appended: the write's token, the token of the write before it ('' for the first)."""

    token: str
    previous: str
    chunk: bytes


def default_directory() -> Path:
    """RAM-backed ``/dev/shm`` where it exists, else the temporary directory; per user, as files hold state."""
    shared_memory = Path("/dev/shm")
    in_memory = shared_memory.is_dir() and os.access(shared_memory, os.W_OK)
    base = shared_memory if in_memory else Path(tempfile.gettempdir())
    return base / f"featurestream-latest-chunks-{os.getuid()}"


class LatestChunks:
    """The latest chunks per group name, one file per write, in ``directory`` (created on first write)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_directory()

    def publish(self, group: str, written: LatestChunk) -> None:
        """Leave ``written`` for other workers and drop the group's files it does not link back to; errors are
        swallowed (a cache, see the module)."""
        if len(written.chunk) > MAX_SHARED_CHUNK_BYTES:
            return  # no file: a reader's walk back from this token stops at once
        pending: Path | None = None
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=f".{group}-", delete=False) as file:
                pending = Path(file.name)
                file.write(written.token.encode() + _SEPARATOR + written.previous.encode() + _SEPARATOR)
                file.write(written.chunk)
            pending.replace(self._path(group, written.token))
            pending = None
            self._trim(group, written)
        except OSError:
            return
        finally:
            if pending is not None:
                pending.unlink(missing_ok=True)

    def read(self, group: str, token: str) -> LatestChunk | None:
        """The chunk ``group``'s write ``token`` left, or None if there is none or it cannot be read."""
        try:
            content = self._path(group, token).read_bytes()
        except OSError:
            return None
        stored_token, separator, rest = content.partition(_SEPARATOR)
        previous, separator_2, chunk = rest.partition(_SEPARATOR)
        if not separator or not separator_2 or stored_token.decode(errors="replace") != token:
            return None
        return LatestChunk(token, previous.decode(errors="replace"), chunk)

    def since(self, group: str, committed: str, copy: str) -> list[bytes] | None:
        """The chunks written after the write ``copy`` up to the committed write ``committed``, oldest first; None
        unless every link back from ``committed`` to ``copy`` is here, within :data:`KEPT_PER_GROUP` writes."""
        chunks: list[bytes] = []
        token = committed
        for _ in range(KEPT_PER_GROUP):
            found = self.read(group, token)
            if found is None:
                return None
            chunks.append(found.chunk)
            if found.previous == copy:
                return chunks[::-1]
            token = found.previous
        return None

    def _path(self, group: str, token: str) -> Path:
        return self.directory / f"{group}.{token}"

    def _trim(self, group: str, newest: LatestChunk) -> None:
        """Remove ``group``'s files that are not among the last :data:`KEPT_PER_GROUP` links back from ``newest``
        (whose own link is known: only the older files' headers are read)."""
        linked = {newest.token}
        token = newest.previous
        while token and len(linked) < KEPT_PER_GROUP:
            linked.add(token)
            try:
                with self._path(group, token).open("rb") as file:
                    file.readline()
                    token = file.readline().rstrip(_SEPARATOR).decode(errors="replace")
            except OSError:
                break
        for path in self.directory.glob(f"{group}.*"):
            if path.name[len(group) + 1 :] not in linked:
                path.unlink(missing_ok=True)
