"""Throughput benchmarks of the physics kernels, each beside a baseline measured in the same run.

These machines are noisy, so absolute times mean little: every result carries the ratio to a plain-NumPy
implementation of the same equations, timed on the same data, in the same process, interleaved.
Pure functions returning dicts; the ``relaxomap bench physics`` command prints and saves them.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from relaxomap.physics.protocol import Protocol, pack_protocols, preset

__all__ = ["bench_closed_form", "bench_epg", "random_maps", "time_best"]


def random_maps(n_vox: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct physiological maps: log-uniform T1 50–5000 ms, T2 5–2000 ms (T2 ≤ T1), PD 0.5–1; float32."""
    rng = np.random.default_rng(seed)
    t1 = np.exp(rng.uniform(np.log(50.0), np.log(5000.0), n_vox)).astype(np.float32)
    t2 = np.minimum(np.exp(rng.uniform(np.log(5.0), np.log(2000.0), n_vox)), t1).astype(np.float32)
    pd = rng.uniform(0.5, 1.0, n_vox).astype(np.float32)
    return t1, t2, pd


def time_best(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """Run each function once to warm up, then ``repeats`` rounds interleaved; best and median seconds."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"best_s": float(np.min(t)), "median_s": float(np.median(t))} for name, t in times.items()}


def bench_closed_form(n_vox: int = 4_000_000, repeats: int = 5, seed: int = 0,
                      protocols: list[Protocol] | None = None) -> dict:
    """Closed-form renderer: Numba kernel vs plain NumPy float32 on T1w SE, T2w TSE and FLAIR.

    Returns a dict with voxel-contrasts/s (best of ``repeats``) of ``numba_kernel`` (no validation),
    ``signal`` (the public entry, validation and allocation included) and ``numpy``, their ratios to NumPy,
    and the largest difference of the kernel from the float64 reference relative to the PD scale.
    """
    from relaxomap.physics.signal import signal, signal_kernel, signal_numpy, signal_reference

    protocols = protocols or [preset("t1w_se_3t"), preset("t2w_tse_3t"), preset("flair_3t")]
    t1, t2, pd = random_maps(n_vox, seed)
    table = pack_protocols(protocols)
    out = np.empty((len(protocols), n_vox), np.float32)
    timed = time_best({
        "numba_kernel": lambda: signal_kernel(t1, t2, pd, table, out),
        "signal": lambda: signal(t1, t2, pd, protocols),
        "numpy": lambda: signal_numpy(t1, t2, pd, protocols),
    }, repeats)
    work = n_vox * len(protocols)
    sub = slice(0, min(n_vox, 200_000))
    ref = signal_reference(t1[sub], t2[sub], pd[sub], protocols)
    signal_kernel(t1, t2, pd, table, out)
    err = float(np.max(np.abs(out[:, sub] - ref)))
    result = {
        "n_vox": n_vox, "protocols": [p.name or p.kind for p in protocols], "repeats": repeats,
        "max_abs_error_vs_float64": err,
    }
    for name, t in timed.items():
        result[name] = {**t, "voxel_contrasts_per_s": work / t["best_s"],
                        "ratio_to_numpy": timed["numpy"]["best_s"] / t["best_s"]}
    return result


def bench_epg(n_vox: int = 100_000, repeats: int = 5, seed: int = 0, protocol: Protocol | None = None) -> dict:
    """EPG echo trains: Numba direct and dictionary mode vs a vectorised NumPy EPG of the same train.

    Default train: the 3 T T2w TSE preset (16 echoes, 150° refocusing). Throughput is voxel-echoes/s (every
    echo of every voxel returned). The dictionary is built once outside the timed region (its build time is
    reported separately), as a renderer of many volumes would.
    """
    from relaxomap.physics.epg import epg_echo_train
    from relaxomap.physics.epg_numpy import epg_numpy
    from relaxomap.physics.epg_dictionary import EPGDictionary

    protocol = protocol or preset("t2w_tse_3t")
    t1, t2, _ = random_maps(n_vox, seed)
    t0 = time.perf_counter()
    dictionary = EPGDictionary(protocol)
    build_s = time.perf_counter() - t0
    timed = time_best({
        "numba_direct": lambda: epg_echo_train(t1, t2, protocol),
        "dictionary": lambda: dictionary.echo_train(t1, t2),
        "numpy": lambda: epg_numpy(t1, t2, protocol),
    }, repeats)
    direct = epg_echo_train(t1, t2, protocol)
    work = n_vox * protocol.etl
    result = {
        "n_vox": n_vox, "etl": protocol.etl, "refocus_deg": protocol.refocus_deg, "repeats": repeats,
        "dictionary_build_s": build_s,
        "max_abs_diff_numpy_vs_numba": float(np.max(np.abs(epg_numpy(t1, t2, protocol) - direct))),
        "max_abs_diff_dictionary_vs_direct": float(np.max(np.abs(dictionary.echo_train(t1, t2) - direct))),
    }
    for name, t in timed.items():
        result[name] = {**t, "voxel_echoes_per_s": work / t["best_s"],
                        "ratio_to_numpy": timed["numpy"]["best_s"] / t["best_s"]}
    return result
