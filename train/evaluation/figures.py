"""Evaluation figures: per-sample montages (inputs / truth / predictions / errors) and metric-vs-protocol curves.

Matplotlib is imported inside the functions and drawn with the Agg canvas on a ``Figure`` object (no pyplot,
no global backend switch), so importing this module is cheap and works without a display.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from relaxomap.train.evaluation.curves import CURVE_METRIC_LABELS

__all__ = ["MAP_WINDOWS", "montage_png", "curves_png"]

#: Display window of each map (T1 [ms], T2 [ms], PD): the physiological brain range, so CSF saturates in T2
#: rather than flattening the tissue contrast.
MAP_WINDOWS: dict[str, tuple[float, float]] = {"t1": (0.0, 4500.0), "t2": (0.0, 300.0), "pd": (0.0, 1.2)}
_MAP_TITLES = {"t1": "T1 [ms]", "t2": "T2 [ms]", "pd": "PD"}
_CONTRAST_TITLES = ("T1w", "T2w", "FLAIR")
_ERROR_FRACTION = 0.25  # signed error shown within ± this fraction of the map's window


def _canvas(fig: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(fig)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _canvas(fig)
    fig.savefig(path, dpi=90)
    return path


def montage_png(path: str | os.PathLike, inputs: np.ndarray, present: np.ndarray, targets: np.ndarray,
                mask: np.ndarray, predictions: Mapping[str, np.ndarray], title: str = "") -> Path:
    """Write one sample's montage: a row of inputs, then per map the truth, each model's prediction and its
    signed error inside the brain mask.

    Parameters
    ----------
    path : output PNG.
    inputs : (3, H, W) normalised T1w, T2w, FLAIR (absent contrasts are drawn blank and labelled).
    present : (3,) 0/1 flags.
    targets : (3, H, W) ground truth [T1 ms, T2 ms, PD].
    mask : (H, W) bool brain mask (errors are shown inside it).
    predictions : ``{model: (3, H, W)}``.
    title : figure title.

    Returns
    -------
    The written path.
    """
    from matplotlib.figure import Figure

    names = list(predictions)
    n_cols = max(3, 1 + 2 * len(names))
    fig = Figure(figsize=(2.0 * n_cols, 2.1 * 4 + 0.4))
    axes = fig.subplots(4, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    m = np.asarray(mask, bool)
    for c in range(3):
        ax = axes[0, c]
        if present[c]:
            ax.imshow(inputs[c], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_title(_CONTRAST_TITLES[c], fontsize=8)
        else:
            ax.set_title(f"{_CONTRAST_TITLES[c]} (absent)", fontsize=8)
    for r, key in enumerate(("t1", "t2", "pd"), start=1):
        lo, hi = MAP_WINDOWS[key]
        span = _ERROR_FRACTION * (hi - lo)
        ax = axes[r, 0]
        im = ax.imshow(targets[r - 1], cmap="magma", vmin=lo, vmax=hi)
        ax.set_title(f"truth {_MAP_TITLES[key]}", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        for j, name in enumerate(names):
            pred = predictions[name][r - 1]
            ax = axes[r, 1 + j]
            ax.imshow(pred, cmap="magma", vmin=lo, vmax=hi)
            ax.set_title(f"{name}", fontsize=8)
            ax = axes[r, 1 + len(names) + j]
            err = np.where(m, pred - targets[r - 1], 0.0)
            im = ax.imshow(err, cmap="RdBu_r", vmin=-span, vmax=span)
            ax.set_title(f"{name} error", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _metric_label(metric: Any) -> str:
    return CURVE_METRIC_LABELS.get(metric, str(metric))


def curves_png(path: str | os.PathLike, curves: Mapping[str, Any], title: str = "") -> Path:
    """Write a per-slice metric vs each acquisition variable: one column per variable, one row per map, one line
    per model (the binned curves of :func:`train.evaluation.curves.binned_curves`; the metric is named by each
    curve's ``metric``).

    Returns
    -------
    The written path.
    """
    from matplotlib.figure import Figure

    xs = list(curves)
    if not xs:
        raise ValueError("curves_png: no curve to draw (no acquisition variable varies)")
    maps = ("t1", "t2", "pd")
    fig = Figure(figsize=(3.0 * len(xs), 2.4 * len(maps) + 0.5))
    axes = fig.subplots(len(maps), len(xs), squeeze=False)
    for j, x in enumerate(xs):
        cur = curves[x]
        xm = np.array([np.nan if v is None else v for v in cur["x_mean"]], np.float64)
        for i, key in enumerate(maps):
            ax = axes[i, j]
            for model, per_map in cur["values"].items():
                y = np.array([np.nan if v is None else v for v in per_map[key]], np.float64)
                ok = np.isfinite(xm) & np.isfinite(y)
                if ok.any():
                    ax.plot(xm[ok], y[ok], marker="o", ms=3, label=model)
            if i == len(maps) - 1:
                ax.set_xlabel(x, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{_MAP_TITLES[key]} {_metric_label(cur.get('metric'))}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96 if title else 1))
    return _save(fig, path)
