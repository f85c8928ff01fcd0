"""Side-by-side evaluation of trained networks and the NLLS baseline on test scenarios (synth stores).

Each store is one *scenario* (internal test split, unseen lesions, out-of-range protocols, noise levels,
held-out real anatomy, ...), named by its ``scenario`` attribute or else its file stem. Every model predicts
whole slices (no patches); the metrics are those of :mod:`train.evaluation.metrics` (brain mask, brain without CSF,
whole slice, per tissue group including lesions), accumulated with :class:`train.evaluation.metrics.MetricAccumulator`.

Result layout (:func:`evaluate`, also ``results.json``)
------------------------------------------------------
``models``: ``{name: {"kind": "checkpoint" | "nlls", "path", "arch", "step", "sha256", ...}}``
``scenarios``: ``{scenario: {"store", "split", "n_samples", "models": {name: {
    "metrics": MetricAccumulator.result()   # region -> map -> metric (+ "tissue" -> group -> map -> metric)
    "per_slice": {map: {metric: {"mean", "std", "n"}}}   # over slices, brain mask (+ no-CSF, whole-slice PSNR)
    "n_slices", "n_skipped", "seconds_per_slice"}}}}``
``samples``: ``{scenario: [{"index", "subject_id", "slice_index", "field_t", "present", "kinds",
    "params": {role: {"tr_ms", "te_ms", "ti_ms"}}, "snr": {role: SNR}, "metrics": {name: {map: {...}} | None}}]}``
``curves``: ``{scenario: {x: {"x_mean", "edges", "n", "psnr_db": {name: {map: [per-bin mean]}}}}}`` — brain
    PSNR binned by each acquisition time that varies in the scenario (quantile bins) and by the mean SNR.

Non-finite numbers (empty regions, a perfect prediction's infinite PSNR) are written to JSON as ``null``.
The markdown tables and the written report (``results.md``, ``results.json``, figures) come from
:mod:`train.evaluation.report`; :func:`format_main_table`, :func:`format_tissue_table` and :func:`write_outputs` are
re-exported here.
The NLLS baseline needs all three contrasts; samples with a missing contrast (or a slice it cannot calibrate)
count in its ``n_skipped``, and the sample record's ``skipped`` entry says why.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap import __version__
from relaxomap.physics.protocol import CONTRASTS, SEQUENCE_KIND_NAMES
from relaxomap.train.evaluation.metrics import (
    CSF_LABEL,
    MAP_NAMES,
    MetricAccumulator,
    mae,
    mean_percentage_error,
    psnr,
    ssim,
)
from relaxomap.train.evaluation.report import format_main_table, format_tissue_table, json_safe, write_outputs

__all__ = [
    "NLLS_NAME",
    "SPLIT_CHOICES",
    "PARAM_KEYS",
    "Evaluation",
    "scenario_names",
    "model_names",
    "evaluate",
    "binned_curves",
    "format_main_table",
    "format_tissue_table",
    "write_outputs",
    "run_evaluate",
]

#: Name (and ``models`` value) of the voxel-wise least-squares baseline.
NLLS_NAME = "nlls"
#: ``split`` values: a subject-wise split of the store, or every sample (scenario stores).
SPLIT_CHOICES = ("test", "val", "train", "all")
#: Contrast roles in channel order.
#: Acquisition times of each role, in ``params`` column order [ms].
PARAM_KEYS = ("tr_ms", "te_ms", "ti_ms")
_RECORD_METRICS = ("psnr_db", "ssim", "mae", "mpe_pct", "psnr_no_csf_db", "mpe_no_csf_pct", "psnr_whole_db")


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the JSON-able ``results`` and a few montage examples per scenario.

    ``examples[scenario]`` is a list of dicts with ``inputs`` (3, H, W), ``present`` (3,), ``targets`` (3, H, W),
    ``mask`` (H, W), ``index`` and ``predictions`` ``{model: (3, H, W)}`` (float32 NumPy).
    """

    results: dict[str, Any]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ names
def scenario_names(stores: Sequence[str | os.PathLike]) -> list[str]:
    """One scenario name per store: its ``scenario`` attribute, else its file stem; repeats get ``-2``, ``-3``."""
    import h5py

    names: list[str] = []
    for s in stores:
        p = Path(s)
        name = p.stem
        if p.is_file():
            try:
                with h5py.File(p, "r") as f:
                    attr = f.attrs.get("scenario")
                    if attr is not None:
                        name = attr.decode() if isinstance(attr, bytes) else str(attr)
            except OSError:
                pass  # unreadable: SynthDataset reports it with the schema check
        names.append(_first_free(name, names, "-"))
    return names


def model_names(archs: Sequence[str], paths: Sequence[str | os.PathLike]) -> list[str]:
    """Display names: the architecture, disambiguated by the file stem (then the parent folder, then a count)."""
    out: list[str] = []
    for arch, path in zip(archs, paths):
        p = Path(path)
        name = arch if list(archs).count(arch) == 1 else f"{arch} ({p.stem})"
        if name in out:
            name = f"{arch} ({p.parent.name}/{p.stem})"
        out.append(_first_free(name, out, " #"))
    return out


def _first_free(name: str, taken: Sequence[str], sep: str) -> str:
    """``name`` if not in ``taken``, else the first of ``name{sep}2``, ``name{sep}3``, ... that is not."""
    base, k = name, 2
    while name in taken:
        name, k = f"{base}{sep}{k}", k + 1
    return name


# ------------------------------------------------------------------------------------------------ helpers
def _record_metrics(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per-slice metrics of one prediction (train.evaluation.metrics functions; brain mask, no-CSF, whole slice)."""
    no_csf = mask & (labels != CSF_LABEL)
    out = {}
    for c, name in enumerate(MAP_NAMES):
        p, t = pred[c], true[c]
        out[name] = {
            "psnr_db": psnr(p, t, mask), "ssim": ssim(p, t, mask), "mae": mae(p, t, mask),
            "mpe_pct": mean_percentage_error(p, t, mask), "psnr_no_csf_db": psnr(p, t, no_csf),
            "mpe_no_csf_pct": mean_percentage_error(p, t, no_csf), "psnr_whole_db": psnr(p, t),
        }
    return out


def _per_slice_summary(records: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Mean, std (population) and count over slices of each record metric, skipping non-finite values."""
    out: dict[str, Any] = {}
    for name in MAP_NAMES:
        out[name] = {}
        for metric in _RECORD_METRICS:
            v = np.array([r[name][metric] for r in records if r is not None], np.float64)
            v = v[np.isfinite(v)]
            out[name][metric] = {"mean": float(v.mean()) if v.size else math.nan,
                                 "std": float(v.std()) if v.size else math.nan, "n": int(v.size)}
    return out


def _sample_meta(f: Any, i: int) -> dict[str, Any]:
    """Acquisition facts of store row ``i``: present flags, kinds, TR/TE/TI [ms], SNR, field [T], ids."""
    present = f["present"][i].astype(bool)
    params = f["params"][i]
    prot = f["protocols"][i]
    snr = f["snr"][i]
    sid = f["subject_id"][i]
    meta = {
        "index": int(i),
        "subject_id": sid.decode() if isinstance(sid, bytes) else str(sid),
        "slice_index": int(f["slice_index"][i]),
        "field_t": float(f["field_t"][i]),
        "present": [int(v) for v in present],
        "kinds": {r: (SEQUENCE_KIND_NAMES.get(int(prot[c, 0]), "?") if present[c] else None) for c, r in enumerate(CONTRASTS)},
        "params": {r: ({k: float(params[c, j]) for j, k in enumerate(PARAM_KEYS)} if present[c] else None)
                   for c, r in enumerate(CONTRASTS)},
        "snr": {r: (float(snr[c]) if present[c] else None) for c, r in enumerate(CONTRASTS)},
    }
    return meta


# ------------------------------------------------------------------------------------------------ models
def _load_models(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike], device: Any
                 ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``{name: net or NLLS_NAME}`` and ``{name: info}``; a sequence gets names from :func:`model_names`."""
    from relaxomap.train.checkpoint import load_predictor

    if isinstance(models, Mapping):
        items = [(str(k), v) for k, v in models.items()]
    else:
        items = [(None, v) for v in models]
    if not items:
        raise ValueError("evaluate needs at least one model: a checkpoint path or 'nlls'")
    loaded = []
    for name, spec in items:
        if str(spec) == NLLS_NAME:
            loaded.append((name or NLLS_NAME, NLLS_NAME, {"kind": "nlls", "arch": "voxel-wise NLLS",
                                                          "path": None}))
            continue
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"model checkpoint {path} not found (a checkpoint .pt written by "
                                    "`relaxomap train`, or 'nlls' for the least-squares baseline)")
        net, _config, _meta, info = load_predictor(path, device)
        loaded.append((name, net, dict(info, kind="checkpoint")))
    auto = model_names([info["arch"] for _, _, info in loaded], [info["path"] or NLLS_NAME for _, _, info in loaded])
    nets: dict[str, Any] = {}
    infos: dict[str, dict[str, Any]] = {}
    for (name, net, info), auto_name in zip(loaded, auto):
        key = name or (NLLS_NAME if net == NLLS_NAME else auto_name)
        if key in nets:
            raise ValueError(f"two models are named {key!r}; give distinct names")
        info.pop("config", None)
        nets[key], infos[key] = net, info
    return nets, infos


# ------------------------------------------------------------------------------------------------ evaluate
def evaluate(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
             stores: Sequence[str | os.PathLike], *, split: str = "test", max_samples: int | None = None,
             batch: int = 8, device: str = "auto", n_examples: int = 3, nlls_config: Any = None,
             progress: bool = False) -> Evaluation:
    """Evaluate every model on every store (scenario).

    Parameters
    ----------
    models : ``{name: checkpoint path or "nlls"}``, or a sequence of them (names from the checkpoints' arch,
        see :func:`model_names`).
    stores : synth stores (``relaxomap synth --out``), one scenario each.
    split : ``"test"`` (the store's subject-wise test split; also ``"val"``, ``"train"``) or ``"all"`` (every
        sample, for stores made only for testing).
    max_samples : use at most N samples of each scenario, evenly spaced over it (``None`` = all).
    batch : slices per forward pass of the networks.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    n_examples : samples per scenario kept for montages.
    nlls_config : :class:`physics.voxel_solver.NLLSConfig` for the baseline (default settings if ``None``).
    progress : print a progress bar.

    Returns
    -------
    :class:`Evaluation` (layout of ``results`` in the module docstring).

    Raises
    ------
    FileNotFoundError
        A checkpoint path that does not exist.
    ValueError
        Bad ``split`` / ``max_samples`` / ``batch``, an unreadable store or checkpoint, or a store whose split
        is empty.
    """
    import h5py
    import torch
    from tqdm import tqdm

    from relaxomap.synth.dataset import SynthDataset
    from relaxomap.physics.voxel_fit import fit_slice
    from relaxomap.physics.voxel_solver import NLLSConfig
    from relaxomap.train.device import resolve_device

    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {list(SPLIT_CHOICES)}; got {split!r}")
    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) < 1):
        raise ValueError(f"max_samples must be a positive integer or None; got {max_samples!r}")
    if isinstance(batch, bool) or int(batch) < 1:
        raise ValueError(f"batch must be a positive integer; got {batch!r}")
    if not stores:
        raise ValueError("evaluate needs at least one store (--store)")
    dev = resolve_device(device)
    nets, infos = _load_models(models, dev)
    ncfg = nlls_config or NLLSConfig()
    scen_names = scenario_names(stores)
    results: dict[str, Any] = {
        "format": "relaxomap-evaluation", "format_version": 1,
        "meta": {"split": split, "max_samples": max_samples, "device": str(dev), "batch": int(batch),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": __version__},
        "models": infos, "scenarios": {}, "samples": {}, "curves": {},
    }
    examples: dict[str, list[dict[str, Any]]] = {}
    for store, scen in zip(stores, scen_names):
        ds = SynthDataset(store, split=None if split == "all" else split)
        n = len(ds) if max_samples is None else min(len(ds), int(max_samples))
        chosen = np.unique(np.linspace(0, len(ds) - 1, n).round().astype(int)) if n else np.zeros(0, int)
        if n == 0:
            raise ValueError(f"store {store} has no samples in split {split!r} (its subject-wise split is empty); "
                             "use split 'all' (--split all) for a store made only for testing")
        acc = {name: MetricAccumulator() for name in nets}
        seconds = {name: 0.0 for name in nets}
        skipped = {name: 0 for name in nets}
        records: list[dict[str, Any]] = []
        errors: dict[tuple[int, str], str] = {}
        examples[scen] = []
        h5 = h5py.File(store, "r")
        try:
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, chosen.tolist()), batch_size=int(batch),
                                                 shuffle=False, num_workers=0)
            bar = tqdm(total=n, unit="slice", desc=scen, disable=not progress)
            for b in loader:
                x = b["inputs"].numpy()
                true = b["targets"].numpy().astype(np.float64)
                mask = b["mask"].numpy()[:, 0] > 0
                labels = b["labels"].numpy()
                rows = b["index"].numpy()
                preds: dict[str, np.ndarray] = {}
                fitted: dict[str, np.ndarray] = {}
                for name, net in nets.items():
                    t0 = time.perf_counter()
                    if isinstance(net, str):  # the NLLS baseline, slice by slice
                        out = np.zeros_like(b["targets"].numpy())
                        ok = np.zeros(len(rows), bool)
                        for i, row in enumerate(rows):
                            present = b["present"][i].numpy()
                            if present.sum() < 3:
                                errors[(int(row), name)] = "needs all three contrasts"
                                continue
                            try:
                                res = fit_slice(x[i], h5["protocols"][int(row)], mask[i], present=present,
                                                field_t=float(h5["field_t"][int(row)]), config=ncfg)
                            except ValueError as err:  # e.g. a slice it cannot calibrate: skip it, say why
                                errors[(int(row), name)] = str(err)
                                continue
                            out[i], ok[i] = res.maps, True
                        fitted[name] = ok
                    else:
                        with torch.inference_mode():
                            y = net(b["inputs"].to(dev), b["params"].to(dev), b["present"].to(dev))
                        out = y.float().cpu().numpy()  # the copy to the host waits for the device
                        fitted[name] = np.ones(len(rows), bool)
                    seconds[name] += time.perf_counter() - t0
                    preds[name] = out
                for i, row in enumerate(rows):
                    rec = _sample_meta(h5, int(row))
                    rec["metrics"] = {}
                    for name in nets:
                        if not fitted[name][i]:
                            skipped[name] += 1
                            rec["metrics"][name] = None
                            rec.setdefault("skipped", {})[name] = errors.get((int(row), name), "")
                            continue
                        p = preds[name][i].astype(np.float64)
                        acc[name].update(p, true[i], mask[i], labels[i])
                        rec["metrics"][name] = _record_metrics(p, true[i], mask[i], labels[i])
                    records.append(rec)
                    if len(examples[scen]) < n_examples:
                        examples[scen].append({
                            "index": int(row), "inputs": x[i].copy(), "present": b["present"][i].numpy().copy(),
                            "targets": b["targets"][i].numpy().copy(), "mask": mask[i].copy(),
                            "predictions": {name: preds[name][i].copy() for name in nets if fitted[name][i]}})
                bar.update(len(rows))
            bar.close()
        finally:
            h5.close()
            ds.close()
        per_model = {}
        for name in nets:
            done = n - skipped[name]
            recs = [r["metrics"][name] for r in records]
            per_model[name] = {"metrics": acc[name].result(), "per_slice": _per_slice_summary(recs),
                               "n_slices": done, "n_skipped": skipped[name],
                               "seconds_per_slice": seconds[name] / max(done, 1)}
        results["scenarios"][scen] = {"store": str(Path(store).resolve()), "split": split, "n_samples": n,
                                      "models": per_model}
        results["samples"][scen] = records
        results["curves"][scen] = binned_curves(records, list(nets))
    return Evaluation(results=json_safe(results), examples=examples)



# ------------------------------------------------------------------------------------------------ curves
def _x_values(rec: dict[str, Any]) -> dict[str, float]:
    """Curve abscissae of one sample: ``"<role> <param>"`` [ms] for present contrasts and ``"mean SNR"``."""
    xs: dict[str, float] = {}
    for r in CONTRASTS:
        par = rec["params"].get(r)
        if par is None:
            continue
        for k in PARAM_KEYS:
            if k == "ti_ms" and rec["kinds"].get(r) not in ("ir_tse", "mprage"):
                continue
            xs[f"{r} {k}"] = par[k]
    snrs = [v for v in rec["snr"].values() if v is not None and v > 0]
    if snrs:
        xs["mean SNR"] = float(np.exp(np.mean(np.log(snrs))))  # geometric mean over present contrasts
    return xs


def binned_curves(records: Sequence[dict[str, Any]], models: Sequence[str], max_bins: int = 6) -> dict[str, Any]:
    """Brain PSNR [dB] per model and map, binned by each varying acquisition time and by the mean SNR.

    Bins are quantile bins of the samples' values (at most ``max_bins``, fewer when there are fewer distinct
    values); a variable that is (nearly) constant over the scenario (relative spread < 1e-6) gets no curve.

    Returns
    -------
    ``{x: {"edges": [...], "x_mean": [...], "n": [...], "psnr_db": {model: {map: [...]}}}}``; bins without a
    finite value hold NaN.
    """
    values: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for rec in records:
        for k, v in _x_values(rec).items():
            values.setdefault(k, []).append((v, rec))
    out: dict[str, Any] = {}
    for k, pairs in values.items():
        x = np.array([v for v, _ in pairs], np.float64)
        if x.size < 2 or (x.max() - x.min()) <= 1e-6 * max(abs(x.max()), 1.0):
            continue
        n_bins = int(min(max_bins, np.unique(x).size))
        edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
        nb = edges.size - 1
        curve = {"edges": edges.tolist(), "x_mean": [float(x[which == j].mean()) if (which == j).any() else math.nan
                                                     for j in range(nb)],
                 "n": [int((which == j).sum()) for j in range(nb)], "psnr_db": {}}
        for m in models:
            curve["psnr_db"][m] = {}
            for name in MAP_NAMES:
                per_bin = []
                for j in range(nb):
                    vals = [rec["metrics"][m][name]["psnr_db"] for (_, rec), w in zip(pairs, which)
                            if w == j and rec["metrics"].get(m) is not None]
                    vals = [v for v in vals if v is not None and math.isfinite(v)]
                    per_bin.append(float(np.mean(vals)) if vals else math.nan)
                curve["psnr_db"][m][name] = per_bin
        out[k] = curve
    return out


# ------------------------------------------------------------------------------------------------ pipeline
def run_evaluate(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
                 stores: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, overwrite: bool = False,
                 **kwargs: Any) -> Evaluation:
    """:func:`evaluate` then :func:`write_outputs` (the ``relaxomap evaluate`` pipeline)."""
    from relaxomap.atomic import check_output_dir

    check_output_dir(out_dir, overwrite)  # fail before hours of evaluation, not after
    ev = evaluate(models, stores, **kwargs)
    write_outputs(ev, out_dir, overwrite=overwrite)
    return ev
