"""Look inside a store: a summary (schema, counts, parameter ranges) and a PNG montage of random samples.

matplotlib is imported only inside :func:`montage`.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from relaxomap.atomic import atomic_path
from relaxomap.physics.protocol import CONTRASTS, SEQUENCE_KIND_NAMES
from relaxomap.synth.store.format import ImageReader, check_store

__all__ = ["summarize", "format_summary", "montage"]


@contextmanager
def _open_images(path: str | os.PathLike) -> Iterator[ImageReader]:
    reader = ImageReader(path)
    try:
        yield reader
    finally:
        reader.close()


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def summarize(path: str | os.PathLike, *, max_target_samples: int = 64, seed: int = 0) -> dict[str, Any]:
    """Schema check plus counts and ranges of a store.

    Parameters
    ----------
    path : the store.
    max_target_samples : target-map percentiles are computed on at most this many random samples.
    seed : seed of that random subset.

    Returns
    -------
    dict with ``path``, ``bytes``, ``schema_version``, ``package_version``, ``created``, ``n_samples``,
    ``image_size``, ``n_subjects``, ``n_split_keys``, ``fields_t`` (count per field), ``kinds`` (per contrast:
    count per sequence kind), ``params_ms`` (per contrast: min/max of TR, TE, TI over present contrasts),
    ``snr`` (per contrast min/max), ``present`` (per contrast fraction), ``targets_in_mask`` (T1/T2/PD 1st, 50th,
    99th percentiles of the finite values in the brain mask), ``nonfinite_targets`` (per map: NaN / inf values in
    the brain mask of those samples; a NaN median is never printed for them) and ``config`` (the generator
    configuration). Images are read through :class:`ImageReader` (a view renamed with its parts folder reads).
    """
    path = Path(path)
    with check_store(path) as f:
        n = int(f.attrs["n_samples"])
        protocols = f["protocols"][...]
        params = f["params"][...]
        present = f["present"][...].astype(bool)
        snr = f["snr"][...]
        subject_ids = [_str(s) for s in f["subject_id"][...]]
        fields = f["field_t"][...]
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(n, size=min(n, max_target_samples), replace=False))
        t_values: list[np.ndarray] = [[], [], []]  # type: ignore[list-item]
        with _open_images(path) as reader:
            for i in pick:
                try:
                    images, j = reader.locate(int(i))
                    m = images["mask"][j]
                    t = images["targets"][j]
                except OSError as err:  # truncated or overwritten part file
                    raise ValueError(f"store {path}: sample {i} cannot be read from {reader.source(int(i))} "
                                     f"(damaged file? {str(err).splitlines()[0]})") from None
                for c in range(3):
                    t_values[c].append(t[c][m])  # type: ignore[attr-defined]
        out: dict[str, Any] = {
            "path": str(path),
            "bytes": path.stat().st_size,
            "schema_version": int(f.attrs["schema_version"]),
            "package_version": _str(f.attrs.get("package_version", "")),
            "created": _str(f.attrs.get("created", "")),
            "n_samples": n,
            "image_size": list(f["inputs"].shape[2:]),
            "config": json.loads(f.attrs["config"]),
        }
    out["n_subjects"] = len(set(subject_ids))
    out["n_split_keys"] = len({s.split("/", 1)[0] for s in subject_ids})
    out["fields_t"] = {f"{k:g}": int(v) for k, v in sorted(Counter(fields.round(2).tolist()).items())}
    out["kinds"], out["params_ms"], out["snr"], out["present"] = {}, {}, {}, {}
    for c, contrast in enumerate(CONTRASTS):
        p = present[:, c]
        out["kinds"][contrast] = dict(Counter(SEQUENCE_KIND_NAMES[int(k)] for k in protocols[p, c, 0]))
        out["present"][contrast] = float(p.mean())
        if p.any():
            out["params_ms"][contrast] = {name: [float(params[p, c, j].min()), float(params[p, c, j].max())]
                                      for j, name in enumerate(("tr", "te", "ti"))}
            out["snr"][contrast] = [float(snr[p, c].min()), float(snr[p, c].max())]
    out["targets_in_mask"], out["nonfinite_targets"] = {}, {}
    for c, name in enumerate(("t1_ms", "t2_ms", "pd")):
        v = np.concatenate(t_values[c]) if t_values[c] else np.zeros(0)
        finite = np.isfinite(v)
        out["nonfinite_targets"][name] = int(v.size - finite.sum())
        v = v[finite]
        out["targets_in_mask"][name] = [float(x) for x in np.percentile(v, [1, 50, 99])] if v.size else []
    return out


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable lines of :func:`summarize`'s dict."""
    lines = [
        f"store          {s['path']}  ({s['bytes'] / 1e6:.1f} MB, schema {s['schema_version']}, "
        f"relaxomap {s['package_version']}, created {s['created']})",
        f"samples        {s['n_samples']}  of {s['image_size'][0]}x{s['image_size'][1]}  from {s['n_subjects']} "
        f"subjects ({s['n_split_keys']} split keys)",
        "field [T]      " + ", ".join(f"{k}: {v}" for k, v in s["fields_t"].items()),
        f"forward model  {s['config'].get('forward')}  seed {s['config'].get('seed')}",
    ]
    for contrast in CONTRASTS:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["kinds"][contrast].items()))
        line = f"{contrast:<6} present {s['present'][contrast]:.0%}  kinds: {kinds}"
        if contrast in s["params_ms"]:
            pr = s["params_ms"][contrast]
            line += ("  TR {:.0f}-{:.0f}  TE {:.1f}-{:.1f}  TI {:.0f}-{:.0f} ms".format(*pr["tr"], *pr["te"], *pr["ti"])
                     + "  SNR {:.0f}-{:.0f}".format(*s["snr"][contrast]))
        lines.append(line)
    for name, v in s["targets_in_mask"].items():
        bad = s.get("nonfinite_targets", {}).get(name, 0)
        flag = f"  NON-FINITE: {bad} NaN/inf value(s) left out" if bad else ""
        if v:
            lines.append(f"{name:<6} in brain mask: p1 {v[0]:.3g}  median {v[1]:.3g}  p99 {v[2]:.3g}{flag}")
        elif bad:
            lines.append(f"{name:<6} in brain mask: NON-FINITE: all {bad} value(s) are NaN/inf")
    return "\n".join(lines)


def montage(path: str | os.PathLike, png: str | os.PathLike, *, n: int = 4, seed: int = 0) -> Path:
    """Save a PNG grid of ``n`` random samples: the 3 inputs, the 3 target maps, mask and labels.

    The PNG is written to a temporary name and renamed, so no half-written image is left behind.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = Path(png)
    with check_store(path) as f, _open_images(path) as reader:
        total = int(f.attrs["n_samples"])
        rows = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
        cols = ["T1w", "T2w", "FLAIR", "T1 [ms]", "T2 [ms]", "PD", "mask", "labels"]
        fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.0 * len(cols), 2.1 * len(rows)), squeeze=False)
        limits = [(0, 1.2)] * 3 + [(0, 4500), (0, 300), (0, 1.1), (0, 1), (0, 17)]
        for r, i in enumerate(rows):
            found, j = reader.locate(int(i))
            images = list(found["inputs"][j]) + list(found["targets"][j]) + [found["mask"][j], found["labels"][j]]
            kinds = [SEQUENCE_KIND_NAMES[int(k)] for k in f["protocols"][i, :, 0]]
            params = f["params"][i]
            for c, (ax, img) in enumerate(zip(axes[r], images)):
                cmap = "tab20" if c == 7 else "gray" if c < 3 or c == 6 else "magma"
                ax.imshow(img, cmap=cmap, vmin=limits[c][0], vmax=limits[c][1], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(cols[c], fontsize=9)
                if c < 3:
                    tr, te, ti = params[c]
                    ax.set_xlabel(f"{kinds[c]} {tr:.0f}/{te:.0f}" + (f"/{ti:.0f}" if ti else ""), fontsize=7)
            axes[r][0].set_ylabel(f"#{i} {_str(f['subject_id'][i])}\nz={int(f['slice_index'][i])}", fontsize=7)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return png
