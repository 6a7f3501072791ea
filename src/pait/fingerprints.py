"""Fingerprints of input files for stage keys: what a stage read, not only where it read it.

Two kinds: ``ContentDigests`` gives the sha256 of a file's bytes (for weights, where an in-place
overwrite keeps size and often the name), remembered in a JSON memo by (path, size, mtime_ns, ctime_ns)
so a file is hashed once; ``listing_digest`` hashes the sorted (relative path, size, mtime_ns) of many
files (for image folders, where hashing every byte on every run would cost as much as decoding them).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from pait.cache import write_atomic
from pait.errors import OutputError

CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(stat: os.stat_result) -> list[int]:
    """What must be unchanged for a remembered hash to stand: size, mtime and ctime (a write or a
    replacement changes ctime even when mtime is reset, e.g. by ``touch -d`` or ``cp -p``)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


class ContentDigests:
    """sha256 of files, remembered in ``memo_path`` (JSON, written atomically) while their stamp holds.

    A lost update (two processes writing the memo at once) only costs one more hash; an unwritable memo
    (read-only storage) is not an error.
    """

    def __init__(self, memo_path: str | Path) -> None:
        self.memo_path = Path(memo_path)

    def _read(self) -> dict:
        try:
            memo = json.loads(self.memo_path.read_text())
        except (OSError, ValueError):
            return {}
        return memo if isinstance(memo, dict) else {}

    def sha256(self, path: str | Path) -> str:
        """The content hash of ``path``, from the memo when size, mtime and ctime are unchanged."""
        path = Path(path).resolve()
        stamp = _stamp(path.stat())
        memo = self._read()
        entry = memo.get(str(path))
        if isinstance(entry, dict) and entry.get("stamp") == stamp:
            return entry["sha256"]
        digest = file_sha256(path)
        if _stamp(path.stat()) != stamp:  # written to while being hashed: do not remember either state
            return digest
        memo[str(path)] = {"stamp": stamp, "sha256": digest}
        try:
            write_atomic(self.memo_path, json.dumps(memo, indent=1, sort_keys=True).encode())
        except OutputError:  # a read-only or full store: the digest is recomputed next time
            pass
        return digest


def common_base(paths: Iterable[Path]) -> Path | None:
    """The deepest folder holding every one of the (resolved) ``paths``; None for no path."""
    folders = {p.parent for p in paths}
    return Path(os.path.commonpath(folders)) if folders else None


def listing_digest(paths: Iterable[str | Path]) -> str:
    """sha256 of the sorted (path relative to the files' common folder, size, mtime_ns) of ``paths``."""
    resolved = sorted({Path(p).resolve() for p in paths})
    base = common_base(resolved)
    entries = []
    for path in resolved:
        stat = path.stat()
        entries.append([path.relative_to(base).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()
