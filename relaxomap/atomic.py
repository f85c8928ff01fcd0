"""Atomic file and folder writes: the one way every relaxomap layer writes an output.

A result is written under a temporary name in the destination's own folder (same file system) and renamed
over the destination only once it is complete, so an interrupted or failed command never leaves a
half-written file where a finished one is expected. The temporary name keeps the destination's suffixes
(``.nii.gz``, ``.png``, ``.pt``), because writers such as nibabel and matplotlib choose the format from them.

- :func:`atomic_path` : context manager yielding the temporary path of one file; renames on success.
- :func:`atomic_write_text` / :func:`atomic_write_bytes` : the common one-shot cases.
- :func:`atomic_output_dir` : the same for a whole output folder (``predict --out``, ``demo --out``), with the
  ``--overwrite`` rule.
- :func:`check_output_dir` : that rule alone, for checking an output folder *before* the expensive work.
- :func:`check_output_file` : the same for one output file (a store, a PNG, a JSON summary, a results page,
  ``render --out``, ``export --out``), with the ``--overwrite`` rule for an existing file.

Both checks also refuse a location that cannot be written at all, naming the path: one below a regular file
(``results.md/out``), or whose nearest existing folder is not writable (permission bits, then a probe file
created and removed at once: read-only mounts and immutable folders), so a command stops with a message
before it loads a model or computes anything, instead of a traceback at the end.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "atomic_output_dir", "check_output_dir",
           "check_output_file", "OutputLocationError"]


class OutputLocationError(ValueError):
    """An output path that cannot be written: below a regular file, in a read-only folder, or a folder where a
    file is expected (or the reverse). The message names the path and what is wrong with it."""


def _temporary_name(path: Path) -> Path:
    # Hidden, unique per process and call, destination's suffixes kept: ".<name>.<pid>-<hex>.tmp<suffixes>".
    suffixes = "".join(path.suffixes)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffixes}")


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was (absent or the previous
    version). The destination's folder is created if needed.

    Parameters
    ----------
    path : the destination file.
    fsync : flush the finished file to disk before the rename (checkpoints: survive a power loss, not only a
        crash of this process).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _writable(folder: Path) -> str | None:
    """``None`` if a file can be created in the existing ``folder``, else the reason: the permission bits
    (``os.access``), then a probe file created and removed at once (read-only mounts, immutable folders)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        fd, probe = tempfile.mkstemp(prefix=".relaxomap-write-probe-", dir=folder)
    except OSError as err:
        return err.strerror or type(err).__name__
    os.close(fd)
    os.unlink(probe)
    return None


def _check_location(path: Path, what: str) -> None:
    """Refuse ``path`` if its nearest existing ancestor folder is a regular file or not writable."""
    for parent in path.absolute().parents:
        if os.path.lexists(parent) and parent.is_symlink() and not parent.exists():  # mkdir would fail on it
            raise OutputLocationError(f"{what} {path} cannot be created: {parent} is a broken symbolic link")
        if parent.exists():
            if not parent.is_dir():
                raise OutputLocationError(f"{what} {path} cannot be created: {parent} is a file, not a folder")
            reason = _writable(parent)
            if reason is not None:
                raise OutputLocationError(f"{what} {path} cannot be written: the folder {parent} is read-only "
                                          f"({reason}); choose another location or fix its permissions")
            return


def check_output_file(path: str | os.PathLike, what: str = "output file", *, overwrite: bool = False) -> None:
    """Refuse an output file that cannot be written, before the work that produces it.

    Refused: ``path`` is a folder; it exists and ``overwrite`` is False; it lies below a regular file; its
    folder (the nearest existing one, as missing folders are created) is read-only or immutable.

    Parameters
    ----------
    path : the file to be written.
    what : how the message names it, e.g. ``"--png"`` or ``"store"``.
    overwrite : an existing file may be replaced (it is, atomically). Commands whose output is meant to be
        rewritten (a store being resumed, a summary, a results page) pass True; ``render`` and ``export``
        pass their ``--overwrite`` flag.

    Raises
    ------
    OutputLocationError (a ValueError) naming the path and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputLocationError(f"{what} {path} is a folder; give a file name (--out must name a file, not "
                                  "a directory)")
    if os.path.lexists(path) and not overwrite:
        raise OutputLocationError(f"{what} {path} exists; pass --overwrite to replace it or choose another --out")
    _check_location(path, what)


def check_output_dir(out_dir: str | os.PathLike, overwrite: bool = False, *, existing_ok: bool = False,
                     what: str = "output directory") -> None:
    """Refuse an output folder that exists as a file, exists non-empty without ``overwrite``, or cannot be
    created or written (below a regular file, in a read-only or immutable folder, or read-only itself).

    Parameters
    ----------
    out_dir : the folder.
    overwrite : a non-empty folder may be replaced.
    existing_ok : a non-empty folder is fine as it is (a run folder that is resumed); only the location and
        permissions are checked.
    what : how the message names the folder, e.g. ``"--out"``.

    Raises
    ------
    OutputLocationError (a ValueError) naming the folder and what to do.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputLocationError(f"{what} {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not overwrite and not existing_ok:
            raise OutputLocationError(f"{what} {out_dir} exists and is not empty; pass --overwrite to replace it "
                                      "or choose another --out")
        reason = _writable(out_dir)
        if reason is not None:
            raise OutputLocationError(f"{what} {out_dir} cannot be written: the folder {out_dir} is read-only "
                                      f"({reason}); choose another location or fix its permissions")
        if existing_ok:  # written in place: its parent folder is not touched
            return
    _check_location(out_dir, what)


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh ``<out_dir>.tmp-XXXX`` beside ``out_dir``; on success rename it to ``out_dir``.

    On an exception the temporary directory is removed and ``out_dir`` is left untouched. An existing empty
    ``out_dir`` is replaced; a non-empty one only with ``overwrite`` (it is moved aside, the new one renamed in,
    then the old one deleted, so ``out_dir`` is never half-written).
    """
    out = Path(out_dir)
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        check_output_dir(out, overwrite)  # again: it may have appeared meanwhile
        old = None
        if out.exists():
            if any(out.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
                os.replace(out, old / out.name)
            else:
                out.rmdir()
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
