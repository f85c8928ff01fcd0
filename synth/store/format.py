"""The HDF5 training store's format: schema, checks and sample-by-sample reading.

:mod:`relaxomap.synth.store.writer` writes stores (parts, workers, shards) and :mod:`relaxomap.synth.store.merge`
joins their parts; this module is what a reader needs.

Schema (``SCHEMA_VERSION`` = 1; N samples, H × W images, contrast order t1w, t2w, flair)
---------------------------------------------------------------------------------------
=================  ===================  ==========  ===============================================
dataset            shape                dtype       meaning
=================  ===================  ==========  ===============================================
``inputs``         (N, 3, H, W)         float32     normalised magnitude images (synth.normalize), 0 if absent
``targets``        (N, 3, H, W)         float32     T1 [ms], T2 [ms], PD [relative, CSF = 1]
``mask``           (N, H, W)            bool        brain mask
``labels``         (N, H, W)            uint8       tissue labels (physics.tissues.TISSUE_LABELS)
``params``         (N, 3, 3)            float32     TR, TE, TI [ms] per contrast (TI = 0 without inversion)
``protocols``      (N, 3, 10)           float64     physics.protocol.pack_protocols rows (PACK_COLUMNS)
``present``        (N, 3)               uint8       1 where the contrast is available
``snr``            (N, 3)               float32     SNR per contrast (synth.artefacts definition)
``scale``          (N, 3)               float32     normalisation divisor per contrast (0 if absent)
``seed``           (N,)                 int64       per-sample seed (protocols, artefacts, noise)
``subject_index``  (N,)                 int64       subject index in the generator
``slice_index``    (N,)                 int32       axial slice z in the subject's maps
``field_t``        (N,)                 float32     field strength [T]
``subject_id``     (N,)                 str (vlen)  anatomy id; the split key is the part before '/'
``source``         (N,)                 str (vlen)  where the maps came from
=================  ===================  ==========  ===============================================

Image datasets are chunked one sample per chunk; ``mask`` and ``labels`` are gzip-1 compressed, ``inputs``
and ``targets`` stored raw (noisy float32 does not compress; decompressing targets would halve the read
rate; measurements in docs/benchmarks.md). File attributes: ``schema_version``, ``n_samples``, ``complete`` (True once
written), ``units`` (JSON), ``contrasts`` (JSON), ``protocol_columns`` (JSON), ``config`` (the full
:class:`synth.generate.SynthConfig` JSON), ``package_version``, ``created`` (ISO 8601 UTC).

A store is either **self-contained** (one file) or a **view**: its image datasets are HDF5 virtual datasets
over the part files in ``STORE.h5.parts/`` beside it (see :mod:`relaxomap.synth.store.merge`). A view and its
parts folder may be moved or renamed together (``a.h5`` + ``a.h5.parts/`` -> ``b.h5`` + ``b.h5.parts/``):
relaxomap finds each part with :func:`part_source` (the view's own parts folder first, then the name the view
stores, relative to its folder or absolute as older stores hold it) and reads a view's images through
:class:`ImageReader`, never through HDF5's own resolution of the virtual datasets (which knows only the stored
name, so plain h5py reads of a renamed view give fill values).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from relaxomap.physics.protocol import CONTRASTS, PACK_COLUMNS

__all__ = ["SCHEMA_VERSION", "UNITS", "IMAGE_FIELDS", "store_fields", "parts_dir", "is_view", "part_source",
           "store_bytes", "ImageReader", "check_store"]

SCHEMA_VERSION = 1
UNITS: dict[str, str] = {
    "inputs": "normalised (image / P99 of the head foreground)",
    "targets": "T1 [ms], T2 [ms], PD [relative to CSF = 1]",
    "params": "TR, TE, TI [ms]",
    "protocols": "physics.protocol.PACK_COLUMNS (times in ms, angles in rad)",
    "snr": "mean brain signal / noise standard deviation per channel",
    "scale": "image units",
    "field_t": "T",
}


def store_fields(h: int, w: int) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """Per-sample datasets of the schema: name -> (dtype, per-sample shape)."""
    n = len(CONTRASTS)
    return {
        "inputs": (np.float32, (n, h, w)),
        "targets": (np.float32, (3, h, w)),
        "mask": (bool, (h, w)),
        "labels": (np.uint8, (h, w)),
        "params": (np.float32, (n, 3)),
        "protocols": (np.float64, (n, len(PACK_COLUMNS))),
        "present": (np.uint8, (n,)),
        "snr": (np.float32, (n,)),
        "scale": (np.float32, (n,)),
        "seed": (np.int64, ()),
        "subject_index": (np.int64, ()),
        "slice_index": (np.int32, ()),
        "field_t": (np.float32, ()),
        "subject_id": (str, ()),
        "source": (str, ()),
    }


#: the per-sample image datasets (one sample per chunk)
IMAGE_FIELDS = ("inputs", "targets", "mask", "labels")


def parts_dir(out: str | os.PathLike) -> Path:
    """The folder holding the parts of a store under construction: ``OUT.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def is_view(path: str | os.PathLike) -> bool:
    """Whether the store at ``path`` is a view over ``PATH.parts/`` (virtual image datasets)."""
    try:
        with h5py.File(path, "r") as f:
            return bool(f["inputs"].is_virtual) if "inputs" in f else False
    except OSError as err:
        raise ValueError(f"store {path} is not a readable HDF5 file (corrupt or truncated?): {err}") from None


def part_source(view: str | os.PathLike, stored: str) -> Path:
    """The part file a view's virtual dataset names ``stored``: ``VIEW.parts/<file name>`` (the view's own parts
    folder, which follows a rename of the pair), else ``stored`` relative to the view's folder (or as it is,
    if absolute). The first of these that exists; the first one if none does."""
    view, name = Path(view), Path(stored)
    candidates = [parts_dir(view) / name.name, name if name.is_absolute() else view.parent / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def _view_sources(path: Path, f: h5py.File) -> set[str]:
    """The file names a view's virtual image datasets store (empty for a self-contained store)."""
    return {src.file_name for name in IMAGE_FIELDS if name in f and f[name].is_virtual
            for src in f[name].virtual_sources()}


def store_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of a store: the file plus, for a view, its parts folder."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        sources = _view_sources(path, f)
    return path.stat().st_size + sum(part_source(path, s).stat().st_size for s in sources)


def _check_view_sources(path: Path, f: h5py.File) -> None:
    """A view store's parts must all be found (:func:`part_source`); a virtual dataset would silently read fill."""
    missing = sorted(Path(s).name for s in _view_sources(path, f) if not part_source(path, s).is_file())
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"store {path} is a view over the parts folder {parts_dir(path)}, but {len(missing)} part "
                         f"file(s) are missing ({shown}); keep {parts_dir(path).name}/ beside {path.name} (move "
                         f"them together) or regenerate; `relaxomap synth merge --self-contained` makes one file")


class ImageReader:
    """Sample-by-sample access to a store's image datasets (``inputs``, ``targets``, ``mask``, ``labels``).

    A self-contained store is read directly. For a view, each sample is read from its part file: an HDF5
    virtual dataset resolves its mapping on every read, which made whole-slice reads of a 43-part store
    ~3x slower (760-780 against 2330 samples/s). At most ``max_open`` part files are kept open (least
    recently used closed first), so stores of thousands of parts stay within the open-file limit.

    Open one per process (DataLoader workers included): h5py handles must not cross a fork.
    """

    def __init__(self, path: str | os.PathLike, max_open: int = 64) -> None:
        self.path = Path(path)
        self._file = h5py.File(self.path, "r")
        self._max_open = int(max_open)
        self._open: dict[int, tuple[h5py.File, dict[str, h5py.Dataset]]] = {}
        d = self._file["inputs"]
        if d.is_virtual:
            bounds = sorted((int(v.vspace.get_select_bounds()[0][0]), int(v.vspace.get_select_bounds()[1][0]),
                             v.file_name) for v in d.virtual_sources())
            self._starts = np.array([b[0] for b in bounds], np.int64)
            self._stops = np.array([b[1] + 1 for b in bounds], np.int64)
            self._parts = [part_source(self.path, b[2]) for b in bounds]
            self._direct = None
        else:
            self._direct = {name: self._file[name] for name in IMAGE_FIELDS}

    def _part_of(self, i: int) -> int:
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        if k < 0 or not self._starts[k] <= i < self._stops[k]:
            raise IndexError(f"{self.path}: sample {i} is in none of its {len(self._parts)} parts")
        return k

    def part_ranges(self) -> list[tuple[int, int]]:
        """``[start, stop)`` sample ranges of a view's part files, in order; empty for a self-contained store."""
        return [] if self._direct is not None else [(int(a), int(b)) for a, b in zip(self._starts, self._stops)]

    def source(self, i: int) -> Path:
        """The file holding sample ``i``'s images: the store itself, or for a view the part file."""
        return self.path if self._direct is not None else self._parts[self._part_of(i)]

    def locate(self, i: int) -> tuple[dict[str, h5py.Dataset], int]:
        """The image datasets holding sample ``i`` (0-based, of the store) and its index in them."""
        if self._direct is not None:
            return self._direct, int(i)
        k = self._part_of(i)
        got = self._open.pop(k, None)
        if got is None:
            if len(self._open) >= self._max_open:  # close the least recently used part
                old = next(iter(self._open))
                self._open.pop(old)[0].close()
            f = h5py.File(self._parts[k], "r")
            got = (f, {name: f[name] for name in IMAGE_FIELDS})
        self._open[k] = got  # most recently used last
        return got[1], int(i - self._starts[k])

    def close(self) -> None:
        for f, _ in self._open.values():
            f.close()
        self._open.clear()
        self._file.close()


def check_store(path: str | os.PathLike) -> h5py.File:
    """Open a finished store read-only after checking it against the schema.

    Returns the open ``h5py.File`` (the caller closes it; it is a context manager: ``with check_store(p) as f``).

    Raises
    ------
    ValueError
        naming the file if it is missing, not HDF5 (corrupt/truncated), of another schema version,
        incomplete, or lacking a dataset of the schema.
    """
    path = Path(path)
    if not path.exists():
        hint = f" (an unfinished run is in {parts_dir(path)}; rerun it or `relaxomap synth merge {path}`)" \
            if parts_dir(path).exists() else ""
        raise ValueError(f"store {path} not found{hint}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"store {path} is not a readable HDF5 file (corrupt or truncated?): {err}") from None
    try:
        version = f.attrs.get("schema_version")
        if version is None:
            raise ValueError(f"store {path} has no schema_version attribute; not a relaxomap synth store")
        if int(version) != SCHEMA_VERSION:
            raise ValueError(f"store {path} has schema_version {int(version)}; this relaxomap reads "
                             f"{SCHEMA_VERSION} (regenerate it with `relaxomap synth`)")
        if not bool(f.attrs.get("complete", False)):
            raise ValueError(f"store {path} is incomplete (complete attribute not set)")
        n = int(f.attrs["n_samples"])
        h, w = json.loads(f.attrs["config"])["image_size"]
        for name, (_, shape) in store_fields(h, w).items():
            if name not in f:
                raise ValueError(f"store {path} lacks dataset {name!r} required by schema {SCHEMA_VERSION}")
            if f[name].shape != (n, *shape):
                raise ValueError(f"store {path}: dataset {name!r} has shape {f[name].shape}; expected {(n, *shape)}")
        _check_view_sources(path, f)
    except OSError as err:  # truncated files may open but fail on the first read
        f.close()
        raise ValueError(f"store {path} is not a readable HDF5 file (corrupt or truncated?): {err}") from None
    except Exception:
        f.close()
        raise
    return f
