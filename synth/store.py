"""The HDF5 training store: one schema, crash-safe incremental writing, parallel and sharded generation.

The schema (datasets, shapes, units, attributes) is documented in :mod:`synth.store_format`.

Writing (:func:`write_store`)
-----------------------------
Samples are ordered by subject index (``slices_per_subject`` samples per subject; the last subject may be
cut short) and grouped into *parts* of ``part_subjects`` subjects. Each part is written to
``STORE.h5.parts/part-NNNNNN.h5.tmp``, then flushed to disk, dropped from the page cache and renamed to
``part-NNNNNN.h5`` by a background thread while the next parts are generated (:class:`_Finisher`), so a run
killed at any moment (even ``kill -9``) leaves only complete parts and discardable temporaries; the next run
with the same options resumes with the missing parts. ``workers`` parts are generated in parallel (worker
processes, forked where safe, else spawned: :func:`_start_method`); ``shard=(i, n)`` writes only parts
``p % n == i`` (one job of a cluster array). Sample content
depends only on the configuration and the sample's position, so any number of workers or shards gives
identical arrays.

Merging (:func:`merge_parts`), once every part exists, writes ``STORE.h5.tmp`` and renames it to ``STORE.h5``:

- **view** (default): the image datasets of ``STORE.h5`` are HDF5 *virtual datasets* over the parts, which
  stay in ``STORE.h5.parts/`` beside it (referenced by relative path, so the pair may be moved together);
  the small per-sample datasets are copied. Nothing is copied twice: at 1.6 MB per 256 x 256 sample a copying
  merge doubles the disk traffic (~630 MB/s at 200 samples/s, more than this machine's disk sustains).
  :func:`check_store` refuses a view whose parts are missing (a virtual dataset would silently read fill).
- **self-contained** (``self_contained=True``, ``relaxomap synth merge --self-contained``): the chunks are
  copied as they are into one movable file and the parts folder is removed.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from relaxomap import __version__
from relaxomap.physics.checks import config_differences
from relaxomap.physics.protocol import CONTRASTS, PACK_COLUMNS
from relaxomap.synth.generate import SynthConfig, generate_subject
from relaxomap.synth.store_format import (
    IMAGE_FIELDS,
    SCHEMA_VERSION,
    UNITS,
    ImageReader,
    check_store,
    is_view,
    parts_dir,
    store_bytes,
    store_fields,
)

__all__ = [
    "SCHEMA_VERSION",
    "UNITS",
    "Layout",
    "WriteReport",
    "write_store",
    "merge_parts",
    "is_view",
    "store_bytes",
    "ImageReader",
    "store_fields",
    "parts_dir",
    "default_part_subjects",
    "check_store",
]

#: HDF5 filter per image dataset, chosen by measurement at 256 x 256 (docs/benchmarks.md): noisy float32
#: inputs do not compress (LZF 786 -> 786 kB; with shuffle 686 kB at 30x the read time); textured float32
#: targets compress 2.7x with LZF (786 -> 296 kB) but decompressing costs 1.2 ms, which alone would cap a
#: reader at ~800 samples/s, so both are stored raw; masks and labels shrink 10-60x with gzip-1 at no cost.
_COMPRESSION: dict[str, dict[str, Any]] = {
    "inputs": {},
    "targets": {},
    "mask": {"compression": "gzip", "compression_opts": 1},
    "labels": {"compression": "gzip", "compression_opts": 1},
}
_MANIFEST = "manifest.json"
_PART_SAMPLES = 64  # default part size in samples (rounded down to whole subjects, at least one)


def _create_datasets(f: h5py.File, n: int, h: int, w: int) -> None:
    _create_small_datasets(f, n, h, w)
    for name in IMAGE_FIELDS:
        dtype, shape = store_fields(h, w)[name]
        f.create_dataset(name, (n, *shape), dtype=dtype, chunks=(1, *shape), **_COMPRESSION[name])


def _create_small_datasets(f: h5py.File, n: int, h: int, w: int) -> None:
    """The per-sample datasets other than the images (parameters, seeds, ids)."""
    for name, (dtype, shape) in store_fields(h, w).items():
        if name in IMAGE_FIELDS:
            continue
        if dtype is str:
            f.create_dataset(name, (n,), dtype=h5py.string_dtype("utf-8"), chunks=(max(1, min(n, 4096)),))
        else:
            f.create_dataset(name, (n, *shape), dtype=dtype, chunks=(max(1, min(n, 4096)), *shape))


def default_part_subjects(config: SynthConfig) -> int:
    """Subjects per part file: about 64 samples (at least one subject; one 48-slice head by default).

    Small parts keep the last part short (with two workers, 64- instead of 128-sample parts wrote 2048 samples
    3-6 % faster in three alternating pairs of runs) and make a resume lose little."""
    return max(1, _PART_SAMPLES // config.slices_per_subject)


@dataclass(frozen=True)
class Layout:
    """Which samples belong to which subject and part."""

    n_samples: int
    slices_per_subject: int
    part_subjects: int

    @property
    def n_subjects(self) -> int:
        return math.ceil(self.n_samples / self.slices_per_subject)

    @property
    def n_parts(self) -> int:
        return math.ceil(self.n_subjects / self.part_subjects)

    def subject_samples(self, subject: int) -> int:
        return min(self.slices_per_subject, self.n_samples - subject * self.slices_per_subject)

    def part_subjects_range(self, part: int) -> range:
        return range(part * self.part_subjects, min((part + 1) * self.part_subjects, self.n_subjects))

    def part_samples(self, part: int) -> tuple[int, int]:
        """[start, stop) sample indices of a part."""
        subj = self.part_subjects_range(part)
        start = subj.start * self.slices_per_subject
        return start, min(subj.stop * self.slices_per_subject, self.n_samples)


@dataclass(frozen=True)
class WriteReport:
    """What :func:`write_store` did."""

    path: Path
    n_samples: int
    generated: int  # samples generated by this call (the rest existed from an interrupted run)
    parts: int  # parts of this call's share (all parts unless sharded), all complete on return
    merged: bool
    bytes: int
    seconds: float



def _manifest(config: SynthConfig, layout: Layout) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "config": config.to_dict(), **dataclasses.asdict(layout)}


def _write_attrs(f: h5py.File, config_json: str, n: int, complete: bool) -> None:
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["n_samples"] = n
    f.attrs["units"] = json.dumps(UNITS)
    f.attrs["contrasts"] = json.dumps(list(CONTRASTS))
    f.attrs["protocol_columns"] = json.dumps(list(PACK_COLUMNS))
    f.attrs["config"] = config_json
    f.attrs["package_version"] = __version__
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["complete"] = complete


def _flush_and_drop(path: Path) -> None:
    """Flush ``path`` to disk, then drop its pages from the page cache (``POSIX_FADV_DONTNEED``, where the OS
    has it).

    A store is written once and is usually larger than memory, so keeping the pages it was written through
    mostly evicts other data. Dropping them also makes the next part's writes reuse the memory just freed: on a
    VM whose freed memory goes back to the host (virtio-balloon free page reporting, as on the 2-core test
    machine), growing the page cache into memory the guest does not hold was 20 % of a two-worker run (the
    kernel's copy into new page-cache pages), and 2048 samples with two workers went from 154 / 178 / 178 to
    203 / 209 / 213 samples/s in alternating runs (docs/benchmarks.md). The cost: the first read of a new store
    comes from disk.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _chunk_writer(dset: h5py.Dataset) -> Callable[[int, np.ndarray], None]:
    """``put(i, value)`` writing sample ``i`` of a one-sample-per-chunk image dataset.

    Unfiltered datasets (``inputs``, ``targets``) get the sample's bytes as one whole chunk
    (``write_direct_chunk``: no selection or type-conversion machinery, ~0.1 ms less per dataset and sample
    at 256 x 256); filtered ones (gzip ``mask`` / ``labels``) go through the normal write, which compresses.
    """
    shape = dset.shape[1:]
    raw = (dset.chunks == (1, *shape) and not dset.compression and not dset.shuffle and not dset.fletcher32
           and dset.scaleoffset is None and dset.dtype.isnative)
    if not raw:
        def put(i: int, value: np.ndarray) -> None:
            dset[i] = value
        return put
    dtype = dset.dtype
    zeros = (0,) * len(shape)
    dsid = dset.id

    def put_raw(i: int, value: np.ndarray) -> None:
        a = np.ascontiguousarray(value, dtype)
        if a.shape != shape:
            raise ValueError(f"{dset.name}: sample {i} has shape {a.shape}; expected {shape}")
        dsid.write_direct_chunk((i, *zeros), a)  # C-ordered native bytes = the raw chunk layout
    return put_raw


def _part_path(folder: Path, part: int) -> Path:
    return folder / f"part-{part:06d}.h5"


def _tmp_path(final: Path) -> Path:
    return final.with_name(final.name + ".tmp")


def _write_part(config_json: str, layout: Layout, folder: str, part: int, progress: Any = None) -> int:
    """Generate one part into its temporary file (``part-NNNNNN.h5.tmp``), closed and complete on return but not
    yet flushed to disk or renamed (:class:`_Finisher` does that). Returns its sample count."""
    config = SynthConfig.from_json(config_json)
    tmp = _tmp_path(_part_path(Path(folder), part))
    start, stop = layout.part_samples(part)
    h, w = config.image_size
    fields = store_fields(h, w)
    small: dict[str, list[Any]] = {name: [] for name in fields if name not in IMAGE_FIELDS}
    with h5py.File(tmp, "w") as f:
        _create_datasets(f, stop - start, h, w)
        writers = [_chunk_writer(f[name]) for name in IMAGE_FIELDS]
        i = 0
        for subject in layout.part_subjects_range(part):
            for sample in generate_subject(config, subject, layout.subject_samples(subject)):
                for name, put in zip(IMAGE_FIELDS, writers):
                    put(i, sample[name])
                for name, values in small.items():  # written once per part: per-row writes cost ~50 us each
                    values.append(sample[name])
                i += 1
                if progress is not None:
                    progress(1)
        for name, values in small.items():
            f[name][...] = values if fields[name][0] is str else np.asarray(values, fields[name][0])
        _write_attrs(f, config_json, stop - start, complete=True)
        f.attrs["part"] = part
        f.attrs["first_sample"] = start
    return stop - start


class _Finisher:
    """Flushes written parts to disk and renames them to their final names, in a background thread, while the
    next parts are generated (the flush mostly waits for the disk: 1.0-1.2 s per 2048 samples, 5 % of a
    two-worker run when the workers waited for it themselves).

    A part is final only after :meth:`close` returned; one killed before that is left as ``.tmp`` and is
    generated again on resume.
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="relaxomap-finish")
        self._futures: list[Any] = []

    def submit(self, final: Path) -> None:
        self._futures.append(self._pool.submit(self._finish, final))

    @staticmethod
    def _finish(final: Path) -> None:
        tmp = _tmp_path(final)
        _flush_and_drop(tmp)
        os.replace(tmp, final)

    def close(self) -> None:
        """Wait for every submitted part; re-raises the first error."""
        try:
            for fut in self._futures:
                fut.result()
        finally:
            self._pool.shutdown(wait=True)


def _part_ok(path: Path, layout: Layout, part: int, config_json: str) -> bool:
    """A finished part that belongs to this run (a part is only renamed after it is complete)."""
    try:
        with h5py.File(path, "r") as f:
            start, stop = layout.part_samples(part)
            return (bool(f.attrs.get("complete", False)) and int(f.attrs["n_samples"]) == stop - start
                    and int(f.attrs["first_sample"]) == start and f.attrs["config"] == config_json
                    and f["inputs"].shape[0] == stop - start)
    except (OSError, KeyError, ValueError):
        return False


# ----------------------------------------------------------------------------- worker processes
_QUEUE: Any = None


def _init_worker(q: Any, n_threads: int) -> None:
    global _QUEUE
    _QUEUE = q
    import numba

    from relaxomap.synth._alloc import prepare_generation_process

    prepare_generation_process()  # a worker process only generates (synth._alloc)

    # the kernels are parallel: cores / workers threads each, or the workers oversubscribe the cores
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))


def _worker(args: tuple[str, Layout, str, int]) -> int:
    config_json, layout, folder, part = args
    return _write_part(config_json, layout, folder, part, progress=lambda k: _QUEUE.put(k))


def _start_method() -> str:
    """How worker processes start: ``fork`` on Linux while this process runs no thread pool that a forked
    child could inherit half-locked (Numba's OpenMP layer, torch's), else ``spawn``.

    A forked worker starts with this process's imports done; with two workers, 2048 samples were written
    4-20 % faster than with spawned ones (three alternating pairs of runs).
    """
    import sys

    import numba

    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return "spawn"
    try:
        numba.threading_layer()  # raises ValueError while no parallel kernel has run
    except ValueError:
        return "fork"
    return "spawn"


def _run_parallel(jobs: list[tuple[str, Layout, str, int]], workers: int, progress: Callable[[int], None],
                  done: Callable[[int], None]) -> None:
    """Run part jobs in ``workers`` worker processes, calling ``done(part)`` as each part's file is written; a
    failing or dying worker raises here (no hang)."""
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    ctx = mp.get_context(_start_method())
    q = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                progress(q.get_nowait())
            except queue.Empty:
                return

    n_threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(q, n_threads)) as pool:
        part_of = {pool.submit(_worker, job): job[3] for job in jobs}
        pending = set(part_of)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                drain()
                for fut in finished:
                    fut.result()  # re-raises a worker's exception (BrokenProcessPool if one died)
                    done(part_of[fut])
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    drain()


def _check_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    manifest = json.loads(json.dumps(manifest))  # tuples -> lists, as read back from the file
    path = folder / _MANIFEST
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable manifest ({err}); delete {folder} to start again") from None
        if old != manifest:
            diff = config_differences(old, manifest, ("stored", "now"))
            raise ValueError(f"{folder} holds a run with other settings (differing: {'; '.join(diff)}); "
                             f"rerun with the same options or delete {folder}")
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{_MANIFEST}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, sort_keys=True, indent=1))
    os.replace(tmp, path)



def write_store(config: SynthConfig, out: str | os.PathLike, n_samples: int, *, workers: int = 1,
                shard: tuple[int, int] | None = None, part_subjects: int | None = None,
                progress: Callable[[int], None] | None = None) -> WriteReport:
    """Generate ``n_samples`` samples into the store ``out`` (resuming an interrupted run).

    Parameters
    ----------
    config : generator configuration (stored in the file).
    out : path of the final store, e.g. ``train.h5``.
    n_samples : number of samples N.
    workers : processes generating parts in parallel (1 = in this process).
    shard : ``(i, n)``: write only parts ``p % n == i`` and do not merge (run :func:`merge_parts` when all
        shards are done); ``None`` writes everything and merges.
    part_subjects : subjects per part (default: about 64 samples per part). Must be the same for every
        shard and resume of one store (it is recorded in the manifest).
    progress : called with the number of samples just generated.

    Raises
    ------
    ValueError
        if ``out`` exists with other settings, if a parts folder holds a run with other settings, or on
        invalid arguments.
    """
    import time

    t0 = time.perf_counter()
    out = Path(out)
    if isinstance(n_samples, bool) or not float(n_samples).is_integer() or int(n_samples) < 1:
        raise ValueError(f"write_store: n_samples must be a positive integer; got {n_samples!r}")
    n_samples = int(n_samples)
    if int(workers) < 1:
        raise ValueError(f"write_store: workers must be >= 1; got {workers}")
    if shard is not None:
        i, n = shard
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"write_store: shard must be i/n with 0 <= i < n; got {i}/{n}")
    if part_subjects is None:
        part_subjects = default_part_subjects(config)
    layout = Layout(n_samples, config.slices_per_subject, int(part_subjects))
    config_json = config.to_json()
    if out.exists():
        with check_store(out) as f:
            same = f.attrs["config"] == config_json and int(f.attrs["n_samples"]) == n_samples
        if not same:
            raise ValueError(f"{out} already exists with other settings (config or --n); choose another output "
                             "path or delete it")
        merge_parts(out)  # removes a parts folder left by a self-contained merge killed after its rename
        return WriteReport(out, n_samples, 0, layout.n_parts, True, store_bytes(out), time.perf_counter() - t0)
    folder = parts_dir(out)
    _check_manifest(folder, _manifest(config, layout))
    mine = [p for p in range(layout.n_parts) if shard is None or p % shard[1] == shard[0]]
    todo = []
    for p in mine:
        tmp = _tmp_path(_part_path(folder, p))
        if tmp.exists():  # left by a killed run
            tmp.unlink()
        if not _part_ok(_part_path(folder, p), layout, p, config_json):
            todo.append(p)
    tick = progress or (lambda k: None)
    done_before = sum(layout.part_samples(p)[1] - layout.part_samples(p)[0] for p in mine if p not in todo)
    if done_before:
        tick(done_before)
    generated = 0
    if todo:
        jobs = [(config_json, layout, str(folder), p) for p in todo]
        finisher = _Finisher()
        try:
            if workers == 1 or len(todo) == 1:
                for job in jobs:
                    generated += _write_part(*job, progress=tick)
                    finisher.submit(_part_path(folder, job[3]))
            else:
                _run_parallel(jobs, min(workers, len(todo)), tick, lambda p: finisher.submit(_part_path(folder, p)))
                generated = sum(layout.part_samples(p)[1] - layout.part_samples(p)[0] for p in todo)
        finally:
            finisher.close()
    merged = False
    if shard is None:
        merge_parts(out)
        merged = True
    size = store_bytes(out) if merged else sum(_part_path(folder, p).stat().st_size for p in mine)
    return WriteReport(out, n_samples, generated, len(mine), merged, size, time.perf_counter() - t0)


def merge_parts(out: str | os.PathLike, self_contained: bool = False) -> Path:
    """Join the complete parts of ``OUT.parts/`` into ``OUT`` (atomically; see the module docstring).

    Parameters
    ----------
    out : the store path.
    self_contained : copy the parts' chunks into ``OUT`` and remove the parts folder, instead of writing a
        view (virtual datasets over the parts, which stay beside ``OUT``). A view store can be made
        self-contained later by calling this again with ``self_contained=True``.

    Raises
    ------
    ValueError
        if the parts folder is missing, its manifest unreadable, or parts are missing (listed).
    """
    out = Path(out)
    folder = parts_dir(out)
    man_path = folder / _MANIFEST
    if out.exists() and not (self_contained and is_view(out)):
        if not is_view(out):
            shutil.rmtree(folder, ignore_errors=True)  # left if a self-contained merge was killed after its rename
        return out
    if not man_path.exists():
        raise ValueError(f"no parts to merge: {man_path} not found (run `relaxomap synth --out {out} ...` first)")
    try:
        manifest = json.loads(man_path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{man_path}: unreadable manifest ({err})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{man_path}: schema_version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
    config = SynthConfig.from_dict(manifest["config"])
    config_json = config.to_json()
    layout = Layout(manifest["n_samples"], manifest["slices_per_subject"], manifest["part_subjects"])
    missing = [p for p in range(layout.n_parts) if not _part_ok(_part_path(folder, p), layout, p, config_json)]
    if missing:
        shown = ", ".join(str(p) for p in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ValueError(f"cannot merge {out}: {len(missing)} of {layout.n_parts} parts missing or incomplete "
                         f"in {folder} (parts {shown}); run the missing shards first")
    h, w = config.image_size
    n = layout.n_samples
    tmp = out.with_name(out.name + ".tmp")
    fields = store_fields(h, w)
    with h5py.File(tmp, "w", libver=("v110", "latest")) as dst:
        if self_contained:
            _create_datasets(dst, n, h, w)
        else:
            _create_small_datasets(dst, n, h, w)
            for name in IMAGE_FIELDS:
                dtype, shape = fields[name]
                lay = h5py.VirtualLayout((n, *shape), dtype=dtype)
                for p in range(layout.n_parts):
                    start, stop = layout.part_samples(p)
                    rel = f"{folder.name}/{_part_path(folder, p).name}"  # relative to OUT's folder
                    lay[start:stop] = h5py.VirtualSource(rel, name, shape=(stop - start, *shape), dtype=dtype)
                dst.create_virtual_dataset(name, lay)
        for p in range(layout.n_parts):
            start, stop = layout.part_samples(p)
            with h5py.File(_part_path(folder, p), "r") as src:
                for name in fields:
                    if name not in IMAGE_FIELDS:
                        dst[name][start:stop] = src[name][...]
                    elif self_contained:  # copy compressed chunks without decompressing
                        s_id, d_id = src[name].id, dst[name].id
                        zeros = (0,) * (len(fields[name][1]))
                        for i in range(stop - start):
                            mask, data = s_id.read_direct_chunk((i, *zeros))
                            d_id.write_direct_chunk((start + i, *zeros), data, mask)
        _write_attrs(dst, config_json, n, complete=True)
        dst.attrs["layout"] = "self-contained" if self_contained else "view"
    _flush_and_drop(tmp)
    os.replace(tmp, out)
    if self_contained:
        shutil.rmtree(folder, ignore_errors=True)
    return out


