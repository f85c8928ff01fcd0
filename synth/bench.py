"""Throughput of the synthetic store: generation into HDF5 (closed form / EPG, 1 / 2 workers) and reading.

Timing code only; ``relaxomap bench synth`` prints and saves the numbers. Every rate is measured after a
warm-up run of the same kind (Numba kernels compiled and cached, worker start-up included in the
multi-worker rates: it is part of what a user waits for), from a flushed page cache (at 1.6 MB per 256 x 256
sample, an earlier measurement's unwritten gigabytes would otherwise slow the next one's fsyncs).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from relaxomap.synth.generate import SynthConfig

__all__ = ["bench_write", "bench_read", "bench_draw", "bench_stages", "run_bench"]


def bench_write(config: SynthConfig, n_samples: int, workers: int, folder: str | Path,
                keep: bool = False) -> dict[str, Any]:
    """Samples/s of :func:`synth.store.writer.write_store` for a fresh store (parts, merge and all), with the
    default part size, as ``relaxomap synth`` writes it.

    The page cache is flushed first (``os.sync``), so that the disk is not still writing an earlier
    measurement's gigabytes; the store's own writeback (its parts are fsynced) is part of the rate. The store
    is deleted afterwards unless ``keep`` (then ``path`` in the result names it).
    """
    from relaxomap.synth.store.format import parts_dir
    from relaxomap.synth.store.writer import write_store

    out = Path(folder) / f"bench-{config.forward}-{workers}w-{time.perf_counter_ns()}.h5"
    if hasattr(os, "sync"):
        os.sync()
    t0 = time.perf_counter()
    report = write_store(config, out, n_samples, workers=workers)
    dt = time.perf_counter() - t0
    if not keep:
        out.unlink()
        shutil.rmtree(parts_dir(out), ignore_errors=True)
    return {"forward": config.forward, "workers": workers, "n_samples": n_samples, "seconds": dt,
            "samples_per_s": n_samples / dt, "bytes_per_sample": report.bytes / n_samples,
            "path": str(out) if keep else None}


def bench_draw(config: SynthConfig, n_subjects: int = 3) -> float:
    """Mean seconds of one ``draw_subject`` (the subject maps), after one warm-up draw."""
    from relaxomap.synth.generate import derive_seed
    from relaxomap.synth.sources import draw_subject

    draw_subject(config.source, derive_seed(config.seed, 0, 10_000))
    t0 = time.perf_counter()
    for i in range(n_subjects):
        draw_subject(config.source, derive_seed(config.seed, 0, 10_001 + i))
    return (time.perf_counter() - t0) / n_subjects


def _best_ms(fn: Any, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def bench_stages(config: SynthConfig, repeat: int = 30) -> dict[str, float]:
    """Milliseconds of each step of one sample on a drawn head (minimum of ``repeat`` timings).

    Steps as in :func:`synth.generate.generate_subject`: slicing + pad/crop (per slice, all of a subject's
    slices at once), protocol and artefact draws, closed-form and EPG rendering, artefacts without and with
    k-space truncation, normalisation, and the HDF5 write of the image datasets (into a temporary in-memory
    file).
    """
    import h5py
    import numpy as np

    from relaxomap.synth.artefacts import apply_artefacts, sample_artefacts
    from relaxomap.synth.generate import _axial_stack, derive_seed, render_signal
    from relaxomap.synth.normalize import normalize_intensity
    from relaxomap.synth.protocols import sample_protocols
    from relaxomap.synth.sources import draw_subject
    from relaxomap.synth.store.parts import create_datasets

    maps = draw_subject(config.source, derive_seed(config.seed, 0, 10_000))
    z = int(np.argmax(maps.mask.sum(axis=(0, 1))))
    size = config.image_size
    rng = np.random.default_rng(0)

    zs = np.resize(np.flatnonzero(maps.mask.any(axis=(0, 1))), config.slices_per_subject)  # a subject's slices

    def slices() -> tuple:
        return _axial_stack(maps, zs, size)

    targets, labels_all, masks = slices()
    k = int(np.flatnonzero(zs == z)[0]) if (zs == z).any() else 0
    (t1, t2, pd), labels, mask = targets[k], labels_all[k], masks[k]
    prots = sample_protocols(rng, config.protocols, maps.field_t)
    art = sample_artefacts(rng, config.artefacts)
    plain = dataclasses.replace(art, kspace_fraction=np.ones_like(art.kspace_fraction))
    cut = dataclasses.replace(art, kspace_fraction=np.full_like(art.kspace_fraction, 0.7))
    clean = render_signal(t1, t2, pd, prots, "closed")
    img = apply_artefacts(clean, mask, plain)
    sample = {"inputs": img, "targets": np.stack([t1, t2, pd]), "mask": mask, "labels": labels}

    def write() -> None:
        with h5py.File(f"bench-{time.perf_counter_ns()}.h5", "w", driver="core", backing_store=False) as f:
            create_datasets(f, 1, *size)
            for name, value in sample.items():
                f[name][0] = value

    return {
        "slices": _best_ms(slices, max(3, repeat // 10)) / len(zs),  # per slice, all of a subject's at once
        "draw protocols + artefacts": _best_ms(lambda: (sample_protocols(rng, config.protocols, maps.field_t),
                                                        sample_artefacts(rng, config.artefacts)), repeat),
        "render closed": _best_ms(lambda: render_signal(t1, t2, pd, prots, "closed"), repeat),
        "render epg": _best_ms(lambda: render_signal(t1, t2, pd, prots, "epg"), max(3, repeat // 10)),
        "artefacts": _best_ms(lambda: apply_artefacts(clean, mask, plain), repeat),
        "artefacts with k-space cut": _best_ms(lambda: apply_artefacts(clean, mask, cut), repeat),
        "normalise": _best_ms(lambda: [normalize_intensity(img[c]) for c in range(len(img))], repeat),
        "hdf5 write": _best_ms(write, repeat),
    }


def bench_read(path: str | Path, n_reads: int, patch: int | None = None) -> dict[str, Any]:
    """Samples/s of ``SynthDataset.__getitem__`` (one process, sequential indices).

    Two passes over ``n_reads`` samples: the first reads what was just written (on this VM that is disk-bound,
    like a cold read: ~1.6 MB per 256 x 256 sample), the second the same samples again, as every epoch after
    the first does while the store fits in the page cache. ``samples_per_s`` is the second pass,
    ``first_pass_samples_per_s`` the first.
    """
    from relaxomap.synth.store.dataset import SynthDataset

    ds = SynthDataset(path, patch=patch)
    rates = []
    for _ in range(2):
        t0 = time.perf_counter()
        for k in range(n_reads):
            ds[k % len(ds)]
        rates.append(n_reads / (time.perf_counter() - t0))
    ds.close()
    return {"patch": patch, "n_reads": n_reads, "seconds": n_reads / rates[1], "samples_per_s": rates[1],
            "first_pass_samples_per_s": rates[0]}


def _write_in_new_process(config: SynthConfig, n_samples: int, workers: int, folder: Path,
                          keep: bool = False) -> dict[str, Any]:
    """:func:`bench_write` in a fresh Python process, as a ``relaxomap synth`` run starts.

    The benchmark process itself holds heads and buffers of its other measurements; on a VM, workers that then
    have to touch memory the guest never used run measurably slower (two-worker rates 180-190 in-process against
    200-206 samples/s for the same store written by fresh ``relaxomap synth`` runs).
    """
    import json
    import subprocess
    import sys

    cfg_path = folder / f"bench-config-{time.perf_counter_ns()}.json"
    cfg_path.write_text(config.to_json())
    try:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}  # as the CLI
        args = [str(cfg_path), str(n_samples), str(workers), str(folder), "keep" if keep else "drop"]
        out = subprocess.run([sys.executable, "-m", "relaxomap.synth.bench", *args], check=True,
                             capture_output=True, text=True, env=env)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"bench synth: the write measurement failed:\n{err.stderr[-3000:]}") from None
    finally:
        cfg_path.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> None:
    """``python -m relaxomap.synth.bench CONFIG.json N WORKERS FOLDER keep|drop``: one write measurement,
    JSON on stdout."""
    import json

    from relaxomap.synth._alloc import prepare_generation_process

    prepare_generation_process()  # as `relaxomap synth` does
    config = SynthConfig.from_json(Path(argv[0]).read_text())
    print(json.dumps(bench_write(config, int(argv[1]), int(argv[2]), Path(argv[3]), keep=argv[4] == "keep")))


def run_bench(config: SynthConfig, n_samples: int = 2048, n_samples_epg: int = 192,
              workers: tuple[int, ...] = (1, 2), folder: str | Path | None = None) -> dict[str, Any]:
    """All rates of ``relaxomap bench synth`` and their ratios.

    Returns
    -------
    dict with ``write`` (list of write results), ``read`` (list of read results), ``ratios``
    (``epg/closed`` at 1 worker, ``2w/1w`` per forward model) and the configuration used.
    """
    from relaxomap.synth.store.format import parts_dir

    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="relaxomap-bench-")) if own else Path(folder)
    try:
        results: dict[str, Any] = {"image_size": list(config.image_size),
                                   "slices_per_subject": config.slices_per_subject, "write": [], "read": []}
        for forward, n in (("closed", n_samples), ("epg", n_samples_epg)):
            cfg = config.replace(forward=forward)
            _write_in_new_process(cfg, min(n, cfg.slices_per_subject), 1, folder)  # warm-up: compile kernels
            # the store kept for the read rates is written last, so that no earlier measurement runs beside
            # its gigabytes of page cache (on a VM, growing the page cache into untouched memory is slower)
            for w in sorted(workers, reverse=True):
                keep = (forward, w) == ("closed", workers[0])
                results["write"].append(_write_in_new_process(cfg, n, w, folder, keep=keep))
                if keep:
                    kept = Path(results["write"][-1]["path"])
                    n_reads = max(1000, n_samples)
                    for patch in (None, min(128, *config.image_size)):
                        results["read"].append(bench_read(kept, n_reads, patch))
                    kept.unlink()
                    shutil.rmtree(parts_dir(kept), ignore_errors=True)
        results["write"].sort(key=lambda r: (r["forward"] != "closed", r["workers"]))
        results["draw_s_per_subject"] = bench_draw(config)
        results["stages_ms"] = bench_stages(config)
        rate = {(r["forward"], r["workers"]): r["samples_per_s"] for r in results["write"]}
        ratios = {"epg/closed (1 worker)": rate[("epg", 1)] / rate[("closed", 1)]}
        for forward in ("closed", "epg"):
            for w in workers[1:]:
                ratios[f"{forward} {w}w/1w"] = rate[(forward, w)] / rate[(forward, workers[0])]
        results["ratios"] = ratios
        # what one sample costs once its subject is drawn (1 worker): 1/rate − draw / slices_per_subject
        results["ms_per_sample_excluding_draw"] = {
            forward: 1e3 * (1.0 / rate[(forward, 1)] - results["draw_s_per_subject"] / config.slices_per_subject)
            for forward in ("closed", "epg")}
        for r in results["write"]:
            r.pop("path")
        return results
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
