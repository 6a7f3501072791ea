"""Stage cache, open_lth style: config -> hash -> directory -> skip if done.

A stage's directory appears only complete: outputs are written into a temporary sibling directory
that is renamed into place at the end, so a killed run leaves nothing half-written. Its last file is
``manifest.json``, the size and sha256 of every other file; a stage is done only while its manifest
verifies, so a stage damaged afterwards (a file truncated, deleted or overwritten, the manifest lost)
is computed again, with a warning naming it. A stage is computed under an exclusive lock
(``<stage>/<key>.lock``, ``fcntl.flock``), so two runs sharing one store compute it once: the second
waits, then finds it done. Temporary folders left by a killed run are removed by ``clean_stale``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from pait.errors import OutputError, RunFolderError
from pait.locks import file_lock

log = logging.getLogger(__name__)

KEY_LENGTH = 20
# 2: keys fingerprint the input files (weights content, image listings);
# 3: image listings by content hash (not mtime), random weights by their built content, stages carry a manifest
# 4: the calibration batch size is ``score_batch_size`` in the scores key too (was ``batch_size``); unit keys hold
#    ``recovery_options`` (every default, dampings included) and ``recovery_revision`` (0 included); group score
#    and channel unit keys hold ``group_score_revision`` (0 included; was ``revision`` when nonzero)
SCHEMA_VERSION = 4
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}  # "cannot write here"
MANIFEST = "manifest.json"  # written last into a stage: {"files": {relative path: {"size", "sha256"}}}
CHUNK = 1 << 20
MISSING = (FileNotFoundError, NotADirectoryError)  # the only read errors that mean a stage's file is gone
OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how safetensors' Rust I/O errors end
_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime_ns, ctime_ns, inode) -> sha256 checked in this process


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data of a (nested) dataclass / tuple / dict config."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_key(config: Any) -> str:
    """Hash of the canonical JSON of all fields (defaults included) plus the schema version."""
    payload = json.dumps({"schema": SCHEMA_VERSION, "config": to_jsonable(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


def current_umask() -> int:
    """The process's umask (read by setting it and restoring it at once: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, with the mode a plain ``open``
    would give (0666 less the umask: 0644 under umask 022), not mkstemp's private 0600; an OSError
    (read-only or full disk) becomes an OutputError naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
        raise


def write_if_changed(path: Path, data: bytes) -> None:
    """``write_atomic`` unless ``path`` already holds ``data`` (a finished run stays readable from read-only storage)."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    write_atomic(path, data)


def write_manifest(folder: Path) -> None:
    """Write ``folder/manifest.json``: the size and sha256 of every file below ``folder``."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST):
        files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True))


def manifest_problem(folder: Path) -> str | None:
    """Why the finished stage ``folder`` is not as it was written, or None when its manifest verifies; a
    file that exists but cannot be read (EIO, ESTALE, EACCES) is an OutputError naming it, not damage.

    Sizes are checked every time; a file's sha256 once per process while its (size, mtime, ctime, inode)
    stay the same (``_VERIFIED``), so a stage read many times is hashed once.
    """
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        entries = [(str(rel), int(e["size"]), str(e["sha256"])) for rel, e in files.items()]
    except MISSING:
        return f"no {MANIFEST} (written by an older pait, or lost)"
    except (IsADirectoryError, ValueError, KeyError, TypeError, AttributeError):
        return f"{MANIFEST} is unreadable"
    except OSError as err:  # EIO, ESTALE, EACCES: the stage may be intact, so it is not thrown away
        raise OutputError(f"cannot read {folder / MANIFEST}: {err.strerror or err}") from None
    for rel, size, sha256 in entries:
        path = folder / rel
        try:
            stat = path.stat()
            if not path.is_file():
                return f"{rel} is not a file"
            if stat.st_size != size:
                return f"{rel} holds {stat.st_size} bytes, not {size}"
            stamp = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
            if _VERIFIED.get(stamp) != sha256:
                if file_sha256(path) != sha256:
                    return f"{rel} does not hold the bytes written (sha256 differs)"
                _VERIFIED[stamp] = sha256
        except MISSING:
            return f"{rel} is missing"
        except OSError as err:
            raise OutputError(f"cannot read {path}: {err.strerror or err}") from None
    return None


def check_stage(folder: Path) -> None:
    """For readers of a finished run's stages: a RunFolderError naming ``folder`` unless its manifest verifies."""
    problem = manifest_problem(folder)
    if problem is not None:
        raise RunFolderError(f"the stage {folder} is damaged ({problem}): run the grid again to compute it again")


def write_errno(err: BaseException) -> int | None:
    """The errno of an I/O error while writing: an OSError's, or the one in a safetensors error's text."""
    if isinstance(err, OSError):
        return err.errno
    if isinstance(err, SafetensorError) and (match := OS_ERROR.search(str(err))):
        return int(match.group(1))
    return None


class StageStore:
    """Directories ``root/<stage>/<key>/`` holding each finished stage's outputs, its config.json and its
    manifest.json."""

    def __init__(self, root: str | Path, log_path: str | Path | None = None) -> None:
        self.root = Path(root)
        self.log_path = Path(log_path) if log_path else None
        self.computed = 0  # stages computed (not reused) through this store object

    def path(self, stage: str, config: Any) -> Path:
        return self.root / stage / config_key(config)

    def done(self, stage: str, config: Any) -> bool:
        """Whether the stage is finished and intact (its manifest verifies)."""
        final = self.path(stage, config)
        return final.is_dir() and manifest_problem(final) is None

    def lock_path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.lock"

    @contextmanager
    def claim(self, stage: str, config: Any) -> Iterator[bool]:
        """Yield whether the caller must compute the stage; while it must, hold the stage's lock.

        A finished stage is reported without taking the lock (nothing is written). Otherwise the lock
        is taken (waiting for another process computing it) and the stage is checked again; the
        caller computes and writes it (``writing``) inside this block.
        """
        if self.done(stage, config):
            yield False
            return
        final = self.path(stage, config)
        with file_lock(self.lock_path(stage, final.name)):
            if self.done(stage, config):
                yield False
                return
            if final.exists() or final.is_symlink():
                self._discard(stage, final)
            yield True

    def _discard(self, stage: str, final: Path) -> None:
        """Move a damaged stage aside and remove it, with a warning naming it (the caller holds its lock)."""
        problem = manifest_problem(final) if final.is_dir() else "not a folder"
        log.warning("the %s stage %s is damaged (%s): computing it again", stage, final, problem)
        aside = final.parent / f".{final.name}.damaged-{os.getpid()}-{time.time_ns()}"
        try:
            os.rename(final, aside)
        except OSError as err:
            raise OutputError(f"the {stage} stage {final} is damaged ({problem}) and cannot be replaced: "
                              f"{err.strerror or err}") from None
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)  # what is left is removed by clean_stale
        else:
            aside.unlink(missing_ok=True)

    def clean_stale(self) -> list[Path]:
        """Remove the temporary folders (``<stage>/.<key>.*``) whose stage lock no process holds, i.e.
        left by a killed run; a folder another live run is filling is left alone. Returns those removed."""
        removed = []
        for tmp in sorted(self.root.glob("*/.*")):
            key = tmp.name[1:].split(".", 1)[0]
            if not tmp.is_dir() or len(key) != KEY_LENGTH:
                continue
            try:
                with file_lock(self.lock_path(tmp.parent.name, key), blocking=False) as free:
                    if free:
                        shutil.rmtree(tmp, ignore_errors=True)
                        removed.append(tmp)
            except (OSError, OutputError):  # read-only storage: nothing to clean there
                continue
        return removed

    @contextmanager
    def writing(self, stage: str, config: Any) -> Iterator[Path]:
        """Yield a temporary directory to fill; on success it becomes the stage's directory."""
        final = self.path(stage, config)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        except OSError as err:
            raise OutputError(f"cannot write the {stage} stage under {final.parent}: {err.strerror or err}") from None
        tmp.chmod(0o755)  # mkdtemp makes it private; stage outputs are shared (e.g. across cluster nodes)
        try:
            yield tmp
            (tmp / "config.json").write_text(json.dumps(to_jsonable(config), indent=1, sort_keys=True))
            write_manifest(tmp)
            try:
                os.rename(tmp, final)
            except OSError:  # a duplicate of this stage finished first: keep that one
                if not final.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            code = write_errno(err)
            filename = getattr(err, "filename", None)
            if code in WRITE_ERRNOS or (code is not None and filename and str(filename).startswith(str(tmp))):
                raise OutputError(f"cannot write the {stage} stage under {final.parent}: {os.strerror(code)}") from None
            raise
        self._log(stage, final.name)

    def _log(self, stage: str, key: str) -> None:
        """Append one line per computed (not reused) stage; tests count recomputation with it."""
        self.computed += 1
        if self.log_path is None:
            return
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as f:
                f.write(json.dumps({"stage": stage, "key": key, "time": time.time()}) + "\n")
        except OSError as err:
            raise OutputError(f"cannot write {self.log_path}: {err.strerror or err}") from None
