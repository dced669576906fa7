"""Shared generations: a counter every worker of one stack reads to learn that something it
caches (fault rules, authenticated partners) changed in another worker.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading

from .store import Store


class Generation:
    """A counter in a small file beside the store, mapped into memory: a worker learns
    whether the data changed without a syscall, where a query per request would cost a
    tenth of a GET.

    No library shares a counter between unrelated processes this cheaply; the file is
    eight bytes, written under an exclusive lock, read through the shared page cache.
    """

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._local = 0
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    def _mapped(self) -> mmap.mmap | None:
        if self._path is None:
            return None
        if self._map is None:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < 8:
                    os.pwrite(fd, bytes(8), 0)
                self._map = mmap.mmap(fd, 8)
            finally:
                os.close(fd)  # the mapping keeps the file
        return self._map

    def read(self) -> int:
        mapped = self._mapped()
        if mapped is None:
            return self._local
        value: int = struct.unpack_from("<Q", mapped, 0)[0]
        return value

    def bump(self) -> None:
        with self._lock:
            self._local += 1
            mapped = self._mapped()
            if mapped is None or self._path is None:
                return
            fd = os.open(self._path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                struct.pack_into("<Q", mapped, 0, self.read() + 1)
            finally:
                os.close(fd)  # closing releases the lock


def generation_path(store: Store, name: str) -> str | None:
    """Beside a SQLite file; for a server database, one file per database URL on this
    host, so every stack and worker sharing the database shares the signal too."""
    database = store.url.database or ""
    if store.is_sqlite:
        return None if database in ("", ":memory:") else f"{database}.{name}"
    key = hashlib.sha256(store.url.render_as_string(hide_password=False).encode()).hexdigest()
    return os.path.join(tempfile.gettempdir(), f"handoff-{name}-{key[:16]}")
