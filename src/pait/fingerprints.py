"""Fingerprints of what a stage read, for stage keys: the content of its input files and of built weights.

``ContentDigests`` gives the sha256 of files' bytes (weights, images, label files: an in-place overwrite
keeps size, name and, with ``touch -d`` or ``cp -p``, even mtime), remembered in a JSON memo by
(path, size, mtime_ns, ctime_ns) so each file is hashed once while it is unchanged; ``listing_digest``
hashes the sorted (relative path, content hash) of many files (image folders), so a key follows
the files' content, not their timestamps: a folder touched, or rewritten in place with the same bytes,
keeps its keys. ``state_sha256`` hashes tensors in memory (weights that no file holds, e.g. a random
initialisation).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from pait.cache import file_sha256, write_atomic
from pait.errors import OutputError

SHA256_HEX = 64
UNREADABLE = "unreadable:"  # the digest of a file that cannot be read, followed by the errno


def _stamp(stat: os.stat_result) -> list[int]:
    """What must be unchanged for a remembered hash to stand: size, mtime and ctime (a write or a
    replacement changes ctime even when mtime is reset, e.g. by ``touch -d`` or ``cp -p``)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _remembered(entry: object, stamp: list[int]) -> str | None:
    """The hash a memo entry holds for ``stamp``; None for another stamp or a malformed entry."""
    if not isinstance(entry, dict) or entry.get("stamp") != stamp:
        return None
    digest = entry.get("sha256")
    return digest if isinstance(digest, str) and len(digest) == SHA256_HEX else None


class ContentDigests:
    """sha256 of files, remembered in ``memo_path`` (JSON, written atomically) while their stamp holds.

    A lost update (two processes writing the memo at once) only costs one more hash; an unwritable memo
    (read-only storage) or a damaged one is not an error. With ``deferred``, new hashes are written only by
    ``flush`` (e.g. once the stage that read the files succeeded, so a failing run leaves the store alone).
    """

    def __init__(self, memo_path: str | Path | None, deferred: bool = False) -> None:
        self.memo_path = Path(memo_path) if memo_path is not None else None  # None: remember nothing
        self.deferred = deferred
        self.pending: dict[str, dict] = {}

    def _read(self) -> dict:
        if self.memo_path is None:
            return {}
        try:
            memo = json.loads(self.memo_path.read_text())
        except (OSError, ValueError):
            return {}
        return memo if isinstance(memo, dict) else {}

    def sha256(self, path: str | Path) -> str:
        """The content hash of ``path``, from the memo when size, mtime and ctime are unchanged."""
        return self.many([Path(path).resolve()])[0]

    def many(self, paths: Iterable[Path]) -> list[str]:
        """The content hashes of the resolved ``paths`` (in order): the memo is read once and written once,
        if at all. A file that cannot be read has ``unreadable:<errno>`` (not remembered)."""
        memo = self._read() | self.pending
        digests = []
        for path in paths:
            try:
                stamp = _stamp(path.stat())
                digest = _remembered(memo.get(str(path)), stamp)
                if digest is None:
                    digest = file_sha256(path)
                    if _stamp(path.stat()) == stamp:  # not written to while being hashed: remember it
                        self.pending[str(path)] = memo[str(path)] = {"stamp": stamp, "sha256": digest}
            except OSError as err:  # reading it later names the file (or skips it, with skip_bad_images)
                digest = f"{UNREADABLE}{err.errno}"
            digests.append(digest)
        if not self.deferred:
            self.flush()
        return digests

    def flush(self) -> None:
        """Write the hashes computed since the last flush into the memo."""
        if not self.pending or self.memo_path is None:
            self.pending = {}
            return
        memo = self._read() | self.pending
        self.pending = {}
        try:
            write_atomic(self.memo_path, json.dumps(memo, indent=1, sort_keys=True).encode())
        except OutputError:  # a read-only or full store: the digests are computed again next time
            pass


def common_base(paths: Iterable[Path]) -> Path | None:
    """The deepest folder holding every one of the (resolved) ``paths``; None for no path."""
    folders = {p.parent for p in paths}
    return Path(os.path.commonpath(folders)) if folders else None


def listing_digest(paths: Iterable[str | Path], digests: ContentDigests | None = None) -> str:
    """sha256 of the sorted (path relative to the files' common folder, content sha256) of ``paths``; the
    hashes are remembered in ``digests``' memo (none: every file is hashed)."""
    digests = digests or ContentDigests(None)
    resolved = sorted({Path(p).resolve() for p in paths})
    base = common_base(resolved)
    entries = [[path.relative_to(base).as_posix(), digest] for path, digest in zip(resolved, digests.many(resolved))]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the sorted names, dtypes, shapes and bytes of ``state``'s tensors (on any device)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        flat = tensor.cpu().contiguous().reshape(-1)
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()
