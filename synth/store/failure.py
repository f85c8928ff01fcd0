"""When writing a store fails: one clear error instead of a cascade, and the parts folder left usable.

- :class:`StoreWriteError` (an OSError): writing failed (an I/O error, a worker process that died); the
  message names the store, the parts folder, what is kept and how to resume.
- :class:`DiskFullError` (a StoreWriteError): no space left on the device; the message also says how much
  space is free where, and about how much the samples still to write need (:func:`bytes_per_sample`).
- :func:`check_free_space` : refuse to start writing what the free space cannot hold (before HDF5 meets
  the full disk); :func:`abandon_file` : give up a half-written HDF5 file cleanly.
- :func:`explain_failure` : the error to raise for an exception that ended a run (None: re-raise it as is).
- :func:`remove_temporaries` / :func:`remove_empty_run` : clean up after a failed run: the half-written
  ``.tmp`` parts of this run, and a parts folder this run created that holds no finished part (a run that
  failed before writing anything leaves nothing behind).
"""
from __future__ import annotations

import errno
import os
import shutil
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from relaxomap.synth.store.format import store_fields
from relaxomap.synth.store.parts import MANIFEST, Layout, part_path, tmp_name

__all__ = ["StoreWriteError", "DiskFullError", "is_disk_full", "bytes_per_sample", "check_free_space",
           "check_free_bytes", "merge_failure",
           "abandon_file", "explain_failure", "remove_temporaries", "remove_empty_run", "finished_parts"]

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "errno = 28", "errno = 122")
_SMALL_BYTES = 512  # the per-sample scalars, parameters and ids, with HDF5 overhead


class StoreWriteError(OSError):
    """Writing a store failed; the message names the store and what to do. ``errno`` is the cause's, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code


class DiskFullError(StoreWriteError):
    """No space left on the device of a store's parts folder."""


def _chain(err: BaseException | None) -> Iterable[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) says the device or quota is full.

    h5py reports a failed write as an OSError whose errno may be unset, with the C errno in its text
    (``errno = 28, error message = 'No space left on device'``), so the text is read too."""
    for e in _chain(err):
        if isinstance(e, DiskFullError) or (isinstance(e, OSError) and e.errno in _FULL_ERRNOS):
            return True
        if any(t in str(e).lower() for t in _FULL_TEXTS):
            return True
    return False


def finished_parts(folder: Path) -> list[Path]:
    """The finished part files (``part-NNNNNN.h5``) in a parts folder."""
    return sorted(folder.glob("part-[0-9]*.h5")) if folder.is_dir() else []


def bytes_per_sample(image_size: tuple[int, int]) -> float:
    """Bytes on disk per sample of ``image_size`` (H, W) [px], estimated from above: its datasets uncompressed
    plus the per-sample HDF5 overhead (at 256 x 256: 1.70 MB against 1.58 MB measured; masks and labels
    compress)."""
    h, w = image_size
    raw = sum(int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
              for dtype, shape in store_fields(h, w).values() if dtype is not str)
    return float(raw + _SMALL_BYTES)


def check_free_space(folder: Path, n_samples: int, image_size: tuple[int, int], what: str) -> None:
    """Raise OSError(ENOSPC) naming ``what`` if the file system of ``folder`` (or of its nearest existing
    parent) has less free space than ``n_samples`` samples need (:func:`bytes_per_sample`, plus 1 MB).

    Checked before a part is started, so that a full disk is met here rather than inside HDF5, which cannot
    close a file it failed to write cleanly."""
    check_free_bytes(folder, n_samples * bytes_per_sample(image_size) + 1e6, what)


def check_free_bytes(folder: Path, need: float, what: str) -> None:
    """Raise OSError(ENOSPC) naming ``what`` if the file system of ``folder`` (or of its nearest existing
    parent) has less than ``need`` bytes free."""
    where = next((p for p in [folder, *folder.absolute().parents] if p.exists()), folder)
    free = shutil.disk_usage(where).free
    if free < need:
        raise OSError(errno.ENOSPC, f"No space left on device: {what} needs about {_mb(need)}, {_mb(free)} free "
                      f"in {where.absolute()}")


def abandon_file(f: Any, tmp: Path) -> None:
    """Give up a half-written HDF5 file ``f`` at ``tmp`` after an error: truncate it first (on a full disk this
    frees the space HDF5 needs to close the file; a file it could not flush was retried when its objects were
    garbage-collected and ended the process with a bus error), then close and delete it."""
    try:
        os.truncate(tmp, 0)
    except OSError:
        pass
    try:
        f.close()
    except Exception:  # h5py raises several types for a file it cannot flush; the first error is on its way
        pass
    tmp.unlink(missing_ok=True)


def _mb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def explain_failure(err: BaseException, out: Path, folder: Path, layout: Layout, parts: list[int],
                    image_size: tuple[int, int]) -> StoreWriteError | None:
    """The one error to report for ``err``, which ended writing ``parts`` of the store ``out``; None if ``err``
    is not about writing (a ValueError of the input, say) and should be raised as it is.

    Parameters
    ----------
    err : the exception.
    out, folder : the store and its parts folder.
    layout : the run's layout.
    parts : the parts this call was to write (finished or not).
    image_size : (H, W) of the samples [px].
    """
    done = {p for p in parts if part_path(folder, p).is_file()}
    left = sum(layout.part_samples(p)[1] - layout.part_samples(p)[0] for p in parts if p not in done)
    kept = (f"the {len(finished_parts(folder))} finished part(s) are kept in {folder}" if finished_parts(folder)
            else f"no part was finished in {folder}")
    where = (folder if folder.exists() else folder.parent).absolute()
    if is_disk_full(err) or (isinstance(err, BrokenProcessPool) and _nearly_full(where)):
        per = bytes_per_sample(image_size)
        free = shutil.disk_usage(where).free if where.exists() else 0
        return DiskFullError(
            f"no space left on the device of {where} while writing {out}: {_mb(free)} free there; the {left} "
            f"sample(s) still to write need about {_mb(left * per)} ({_mb(per)} per sample); {kept}. Free at least "
            f"{_mb(max(left * per - free, 0))} there (or choose an --out on a larger disk) and rerun the same "
            "command to resume", errno.ENOSPC)
    if isinstance(err, BrokenProcessPool):
        return StoreWriteError(
            f"a worker process died while writing {out} (killed by the system, e.g. out of memory?); {kept}; "
            "rerun the same command to resume (fewer --workers need less memory)")
    if isinstance(err, OSError) and not isinstance(err, StoreWriteError):
        return StoreWriteError(f"writing {out} failed: {err}; {kept}; rerun the same command to resume",
                               err.errno)
    return None


def merge_failure(err: BaseException, out: Path, folder: Path, need: float) -> StoreWriteError | None:
    """The one error to report when merging the parts in ``folder`` into ``out`` failed with ``err`` (None:
    raise ``err`` as it is); ``need`` is the estimated size of the merged file [bytes]."""
    if isinstance(err, StoreWriteError):
        return None
    if is_disk_full(err):
        where = out.parent.absolute()
        free = shutil.disk_usage(where).free if where.exists() else 0
        return DiskFullError(f"no space left on the device of {where} while merging {out}: {_mb(free)} free there, "
                             f"the merged store needs about {_mb(need)}; the parts in {folder} are untouched. Free "
                             f"some space and run `relaxomap synth merge {out}` again", errno.ENOSPC)
    if isinstance(err, OSError):
        return StoreWriteError(f"merging {out} failed: {err}; the parts in {folder} are untouched; run the merge "
                               "again", err.errno)
    return None


def _nearly_full(path: Path) -> bool:
    """Less than 64 MB free: a worker killed by SIGBUS on a full file system looks like any dead worker."""
    try:
        return shutil.disk_usage(path).free < 64e6
    except OSError:
        return False


def remove_temporaries(folder: Path, parts: Iterable[int]) -> None:
    """Delete the half-written ``part-NNNNNN.h5.tmp`` files of ``parts`` (they only take space: a rerun
    writes them again)."""
    for p in parts:
        try:
            tmp_name(part_path(folder, p)).unlink(missing_ok=True)
        except OSError:
            pass


def remove_empty_run(folder: Path) -> bool:
    """Remove a parts folder that holds nothing but its manifest (call :func:`remove_temporaries` first): a run
    that failed before finishing any part leaves nothing behind. A folder holding anything else (a finished
    part, another shard's temporaries) is left as it is. Returns whether it was removed."""
    if not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    if any(e.name != MANIFEST and not e.name.startswith(f"{MANIFEST}.tmp-") for e in entries):
        return False
    for entry in entries:
        entry.unlink(missing_ok=True)
    try:
        os.rmdir(folder)
    except OSError:
        return False
    return True
