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
- :func:`check_output_file` : the same for one output file (``render --out``, ``export --out``).

Both checks also refuse a destination that cannot be created at all -- below a regular file, or in a folder
that is read-only or immutable (tried with a probe file that is removed at once) -- so a command stops with a
message naming the path before it loads a model or computes anything, instead of a traceback at the end.
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
           "check_output_file"]


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


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (a broken symlink counts as existing)."""
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_writable_dir(folder: Path, what: str, target: Path) -> None:
    """ValueError unless a file can be created in the existing directory ``folder`` (probe: create, remove)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".relaxomap-write-probe-", dir=folder)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(f"{what} {target} cannot be written: directory {folder} is not writable ({reason}); "
                         "choose another --out or fix the folder's permissions") from None
    os.close(fd)
    os.unlink(probe)


def _check_creatable(path: Path, what: str) -> None:
    """ValueError unless ``path`` can be created: its nearest existing ancestor is a writable directory."""
    anc = _nearest_existing(path.parent)
    if not anc.is_dir():
        raise ValueError(f"{what} {path} cannot be created: {anc} is a file, not a directory; choose another "
                         "--out")
    _check_writable_dir(anc, what, path)


def check_output_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output folder that cannot be made, or that exists non-empty without ``overwrite``.

    Refused: ``out_dir`` exists and is not a directory; it lies below a regular file; its parent folder (the
    nearest one that exists) or the folder itself is read-only or immutable; it exists non-empty and
    ``overwrite`` is False.

    Raises
    ------
    ValueError naming the folder and what to do.
    """
    out_dir = Path(out_dir)
    what = "output directory"
    if os.path.lexists(out_dir):
        if not out_dir.is_dir():
            raise ValueError(f"output {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not overwrite:
            raise ValueError(f"output directory {out_dir} exists and is not empty; pass --overwrite to replace it "
                             "or choose another --out")
        _check_writable_dir(out_dir, what, out_dir)
    _check_creatable(out_dir, what)


def check_output_file(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output file that cannot be written, or that exists without ``overwrite``.

    Refused: ``path`` is a directory; it exists and ``overwrite`` is False; it lies below a regular file; its
    folder (the nearest one that exists) is read-only or immutable.

    Raises
    ------
    ValueError naming the file and what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output file {path} is a directory; --out must name a file (one inside it, for example), "
                         "not the directory itself")
    if os.path.lexists(path) and not overwrite:
        raise ValueError(f"output file {path} exists; pass --overwrite to replace it or choose another --out")
    _check_creatable(path, "output file")


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
