"""Exclusive ``flock`` locks on a lock file or a folder, shared by the stage cache and the output folders."""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pait.errors import OutputError

log = logging.getLogger(__name__)

NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # flock unsupported on this filesystem


@contextmanager
def file_lock(path: Path, blocking: bool = True, folder: bool = False) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``, a lock file (created if needed) or, with ``folder``, an existing folder;
    yields False when ``blocking`` is off and another process holds it. The kernel releases the lock
    when its holder dies.

    On a filesystem without locks (some FUSE mounts) it yields ``blocking`` without a lock: a
    blocking caller goes on unlocked (duplicate work stays safe through atomic renames), a
    non-blocking one is told the lock is taken (so nothing that may be live is removed). A lock that
    cannot be created is an OutputError naming it.
    """
    try:
        if folder:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # flock needs no write access: colleagues can lock too
    except OSError as err:  # a file where a folder belongs, read-only storage
        raise OutputError(f"cannot create the lock {path}: {err.strerror or err}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError as err:
            if err.errno not in NO_LOCKS:
                raise
            _warn_no_locks(os.fstat(fd).st_dev, str(err))
            yield blocking
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@functools.cache
def _warn_no_locks(device: int, error: str) -> None:
    """Warn once per filesystem that work is coordinated there without locks."""
    log.warning("a filesystem pait writes to has no file locks (%s): two runs may do the same work twice", error)
