"""Output folders: checked before any work, and replaced whole.

``check_writable_folder`` writes and removes a probe file where the folder is (or would be created), so a
read-only folder, a full disk or a file in the way fails before anything is computed.

``replace_folder`` gives an output folder that appears only complete and never mixes two runs: the
files go into a new hidden sibling (``.NAME.pait-new-*``), which takes the folder's place when it is
complete (the old folder renamed aside to ``.NAME.pait-old-*``, the new one renamed in, the old one
removed). A run killed while writing leaves the previous folder whole; ``clean_leftovers`` (run again
by the next write) removes the siblings such runs left, and puts the old folder back if a run was
killed between its two renames. The swap and the clean-up hold a lock on the parent folder, and a
folder being filled holds a lock on itself, so a concurrent run's folder is never taken for a leftover.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
from collections.abc import Collection, Iterator
from os import fsdecode, fsencode
from pathlib import Path

from pait.errors import OutputError
from pait.locks import file_lock

NEW, OLD = "pait-new", "pait-old"
PROBE_PREFIX = ".pait-probe-"


def check_utf8(path: str | Path, what: str) -> None:
    """Refuse a path that is not valid UTF-8: safetensors (and pyarrow) cannot open a file under it."""
    try:
        fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError(f"{what} {fsdecode(path)!a} is not a valid UTF-8 path, under which the stage and "
                          "results files cannot be opened; rename it") from None


def check_writable_folder(folder: str | Path, what: str = "output folder", utf8: bool = True) -> Path:
    """``folder`` as a Path, when it (or its nearest existing ancestor, if it is still to be created) is a
    folder that takes a file, and (``utf8``) its path is valid UTF-8; an OutputError naming it otherwise.
    Nothing is created."""
    folder = Path(folder)
    if utf8:
        check_utf8(folder, what)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise OutputError(f"{what} {folder} cannot be a folder: an existing file is in the way{where}")
    probe = existing / f"{PROBE_PREFIX}{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise OutputError(f"{what} {folder} is not writable: {err.strerror or err}") from None
    return folder


def _real(folder: str | Path, what: str) -> Path:
    """The folder's absolute path with symbolic links resolved (the folder that is replaced)."""
    real = Path(os.path.realpath(folder))
    if real == real.parent:
        raise OutputError(f"{what} {folder} is a filesystem root, which cannot be replaced; give a folder inside it")
    return real


def _owned(path: Path, owned: Collection[str]) -> bool:
    """Whether ``path`` is one of the ``owned`` files, or a hidden temporary of one (or a probe)."""
    name = path.name
    if path.is_symlink() or not path.is_file():
        return False
    return name in owned or name.startswith(PROBE_PREFIX) or any(name.startswith(f".{o}.") for o in owned)


def check_replaceable(folder: str | Path, owned: Collection[str], what: str = "output folder") -> None:
    """Refuse an existing ``folder`` holding anything but the files named in ``owned`` (and their hidden
    temporaries): replacing it would delete what someone else put there."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    foreign = sorted(p.name for p in folder.iterdir() if not _owned(p, owned))
    if foreign:
        more = f" (+{len(foreign) - 5} more)" if len(foreign) > 5 else ""
        raise OutputError(f"{what} {folder} holds {', '.join(foreign[:5])}{more}, which this command does not write; "
                          "it replaces the whole folder, so give a new or empty folder, or one it wrote before")


def check_output_folder(folder: str | Path, owned: Collection[str], what: str = "output folder") -> Path:
    """Before any work: ``folder`` can be written and replaced (``check_writable_folder`` on it and on its
    parent, ``check_replaceable``); leftovers of killed runs are removed. Returns the folder as given."""
    folder = Path(folder)
    check_writable_folder(folder, what, utf8=False)  # its files are written from bytes: any path serves
    real = _real(folder, what)
    if real.exists():
        check_writable_folder(real.parent, f"the folder holding {what}", utf8=False)
    check_replaceable(real, owned, what)
    try:
        clean_leftovers(real)
    except OSError as err:
        raise OutputError(f"cannot clean up beside {what} {folder}: {err.strerror or err}") from None
    return folder


def _siblings(folder: Path, kind: str) -> list[Path]:
    return sorted(folder.parent.glob(f".{glob.escape(folder.name)}.{kind}-*"))


def _clean_locked(folder: Path) -> list[Path]:
    """``clean_leftovers`` for a caller holding the parent's lock."""
    touched = []
    olds = _siblings(folder, OLD)
    if olds and not os.path.lexists(folder):  # killed between its two renames: the previous folder comes back
        os.rename(olds[-1], folder)
        touched.append(olds.pop())
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
        touched.append(old)
    for new in _siblings(folder, NEW):
        if not new.is_dir():
            continue
        with file_lock(new, blocking=False, folder=True) as free:
            if free:  # no live run is filling it
                shutil.rmtree(new, ignore_errors=True)
                touched.append(new)
    return touched


def clean_leftovers(folder: str | Path) -> list[Path]:
    """Remove the ``.NAME.pait-new-*`` / ``.NAME.pait-old-*`` siblings left by killed runs (restoring the
    old folder if it is missing); a folder a live run is filling is left alone. Returns the paths handled."""
    folder = _real(folder, "output folder")
    if not folder.parent.is_dir():
        return []
    with file_lock(folder.parent, folder=True):
        return _clean_locked(folder)


@contextlib.contextmanager
def replace_folder(folder: str | Path, owned: Collection[str], what: str = "output folder") -> Iterator[Path]:
    """Yield a new empty folder to fill; when the block ends normally it replaces ``folder`` whole (an
    existing one must hold only ``owned`` files, see ``check_replaceable``). If the block raises, or the
    process dies, ``folder`` is left as it was. An OSError becomes an OutputError naming the folder."""
    real = _real(folder, what)
    parent = real.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with file_lock(parent, folder=True):
            _clean_locked(real)
            new = Path(tempfile.mkdtemp(dir=parent, prefix=f".{real.name}.{NEW}-"))
            hold = contextlib.ExitStack()
            hold.enter_context(file_lock(new, folder=True))  # held while it is filled: no clean-up takes it for a leftover
    except OSError as err:
        raise OutputError(f"cannot write {what} {folder}: {err.strerror or err}") from None
    with hold:
        aside = None  # the previous folder, once renamed aside
        try:
            mask = os.umask(0o022)
            os.umask(mask)
            new.chmod(0o777 & ~mask)  # mkdtemp makes it private; an output folder is shared like any other
            yield new
            with file_lock(parent, folder=True):
                check_replaceable(real, owned, what)
                old = parent / f".{real.name}.{OLD}-{secrets.token_hex(4)}"
                if os.path.lexists(real):
                    os.rename(real, old)
                    aside = old
                os.rename(new, real)
                aside = None
                shutil.rmtree(old, ignore_errors=True)
        except BaseException as err:
            if aside is not None and not os.path.lexists(real):
                with contextlib.suppress(OSError):  # else the next run's clean-up brings it back
                    os.rename(aside, real)  # the new folder could not go in: the previous one comes back
            shutil.rmtree(new, ignore_errors=True)
            if isinstance(err, OSError):
                raise OutputError(f"cannot write {what} {folder}: {err.strerror or err}") from None
            raise
