"""Side-by-side evaluation of trained networks and the reference predictors on test scenarios (synth stores).

Each store is one *scenario* (internal test split, unseen lesions, out-of-range protocols, noise levels,
held-out real anatomy, ...), named by its ``scenario`` attribute or else its file stem. Every model predicts
whole slices (no patches). Beside the checkpoints, two reference predictors need no checkpoint
(:mod:`train.evaluation.baselines`): ``nlls``, the voxel-wise least-squares fit, and ``oracle-prior``, the
tissue table at the true labels (what a network scores if it only segments). The metrics are those of
:mod:`train.evaluation.metrics` (definitions there), accumulated per subject by
:class:`train.evaluation.accumulate.MetricAccumulator`: each subject (``subject_id`` of the store) is closed,
and its PD anchored on its CSF, once its last evaluated slice is scored.

Result layout (:func:`evaluate`, also ``results.json``; ``format_version`` 2)
------------------------------------------------------------------------
``models``: ``{name: {"kind": "checkpoint" | "nlls" | "oracle-prior", "path", "arch", "step", "sha256", ...}}``
``scenarios``: ``{scenario: {"store", "split", "n_samples", "n_subjects", "models": {name: {
    "metrics": MetricAccumulator.result()   # region -> map -> pooled metrics + "subjects" (mean ± sd over
                                            # subjects); "tissue" -> group -> map -> ...; "pd_anchor";
                                            # "per_subject" -> subject -> region -> map -> metric
    "n_slices", "n_skipped", "seconds_per_slice"}}}}``
``samples``: ``{scenario: [record, ...]}`` — one per slice (:mod:`train.evaluation.records`), its metrics the
    per-slice :data:`train.evaluation.accumulate.RECORD_METRICS` of the raw maps.
``curves``: ``{scenario: {x: {"x_mean", "edges", "n", "metric", "values": {name: {map: [per-bin mean]}}}}}`` —
    the parenchyma MPE binned by each acquisition time that varies in the scenario
    (:mod:`train.evaluation.curves`).

Non-finite numbers (empty regions, a perfect prediction's infinite PSNR) are written to JSON as ``null``.
The written report (``results.md``, ``results.json``, figures) comes from :mod:`train.evaluation.report`.
The NLLS baseline needs all three contrasts; samples with a missing contrast (or a slice it cannot calibrate)
count in its ``n_skipped``, and the sample record's ``skipped`` entry says why.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap import __version__
from relaxomap.atomic import check_output_dir
from relaxomap.train.checkpoint import load_predictor
from relaxomap.train.device import resolve_device
from relaxomap.train.evaluation.accumulate import MetricAccumulator
from relaxomap.train.evaluation.baselines import BASELINES, NLLS_NAME, ORACLE_NAME, nlls_predict, oracle_prior_predict
from relaxomap.train.evaluation.curves import binned_curves
from relaxomap.train.evaluation.records import sample_meta
from relaxomap.train.evaluation.report import write_outputs
from relaxomap.train.evaluation.results import Evaluation, json_safe

__all__ = [
    "NLLS_NAME",
    "ORACLE_NAME",
    "EVALUATION_FORMAT_VERSION",
    "SPLIT_CHOICES",
    "scenario_names",
    "model_names",
    "evaluate",
    "run_evaluate",
]

#: ``format_version`` of the results (2: metrics per subject and tissue, parenchyma, CSF-anchored PD).
EVALUATION_FORMAT_VERSION = 2
#: ``split`` values: a subject-wise split of the store, or every sample (scenario stores).
SPLIT_CHOICES = ("test", "val", "train", "all")


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


# ------------------------------------------------------------------------------------------------ models
def _load_models(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike], device: Any
                 ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``{name: net or NLLS_NAME}`` and ``{name: info}``; a sequence gets names from :func:`model_names`."""
    if isinstance(models, Mapping):
        items = [(str(k), v) for k, v in models.items()]
    else:
        items = [(None, v) for v in models]
    if not items:
        raise ValueError(f"evaluate needs at least one model: a checkpoint path, {NLLS_NAME!r} or {ORACLE_NAME!r}")
    loaded = []
    for name, spec in items:
        if str(spec) in BASELINES:
            loaded.append((name or str(spec), str(spec), dict(BASELINES[str(spec)])))
            continue
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"model checkpoint {path} not found (a checkpoint .pt written by "
                                    f"`relaxomap train`, {NLLS_NAME!r} for the least-squares baseline or "
                                    f"{ORACLE_NAME!r} for the tissue table at the true labels)")
        net, _config, _meta, info = load_predictor(path, device)
        loaded.append((name, net, dict(info, kind="checkpoint")))
    auto = model_names([info["arch"] for _, _, info in loaded], [info["path"] or net for _, net, info in loaded])
    nets: dict[str, Any] = {}
    infos: dict[str, dict[str, Any]] = {}
    for (name, net, info), auto_name in zip(loaded, auto):
        key = name or (net if isinstance(net, str) else auto_name)
        if key in nets:
            raise ValueError(f"two models are named {key!r}; give distinct names")
        info.pop("config", None)
        nets[key], infos[key] = net, info
    return nets, infos


class _Scenario:
    """One scenario being evaluated: per model a metric accumulator, time and skip count; per slice a record;
    the first ``n_examples`` slices kept for montages. ``subjects`` (one id per evaluated row, in order) says
    when a subject's last slice has been scored, so that it is closed (PD anchored, buffers freed) then."""

    def __init__(self, names: Sequence[str], n_examples: int, subjects: Sequence[str]) -> None:
        self.names, self.n_examples = list(names), n_examples
        self.acc = {name: MetricAccumulator() for name in names}
        self.seconds = {name: 0.0 for name in names}
        self.skipped = {name: 0 for name in names}
        self.records: list[dict[str, Any]] = []
        self.errors: dict[tuple[int, str], str] = {}
        self.examples: list[dict[str, Any]] = []
        self.left: dict[str, int] = {}
        for sid in subjects:
            self.left[sid] = self.left.get(sid, 0) + 1

    def predict(self, nets: Mapping[str, Any], b: Mapping[str, Any], h5: Any, nlls_config: Any, device: Any
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every model's maps (B, 3, H, W) of one batch and its fitted flags (B,); times each model."""
        import torch

        preds: dict[str, np.ndarray] = {}
        fitted: dict[str, np.ndarray] = {}
        for name, net in nets.items():
            t0 = time.perf_counter()
            if net == NLLS_NAME:
                preds[name], fitted[name] = nlls_predict(b, h5, nlls_config, name, self.errors)
            elif net == ORACLE_NAME:
                rows = b["index"].numpy()
                field = np.array([float(h5["field_t"][int(r)]) for r in rows])
                preds[name], fitted[name] = oracle_prior_predict(b["labels"].numpy(), field, name, rows, self.errors)
            else:
                with torch.inference_mode():
                    y = net(b["inputs"].to(device), b["params"].to(device), b["present"].to(device))
                preds[name] = y.float().cpu().numpy()  # the copy to the host waits for the device
                fitted[name] = np.ones(len(b["index"]), bool)
            self.seconds[name] += time.perf_counter() - t0
        return preds, fitted

    def add(self, b: Mapping[str, Any], h5: Any, preds: Mapping[str, np.ndarray],
            fitted: Mapping[str, np.ndarray]) -> None:
        """Score one batch: accumulate metrics, write one record per slice, keep examples, close finished
        subjects."""
        true = b["targets"].numpy().astype(np.float64)
        mask = b["mask"].numpy()[:, 0] > 0
        labels = b["labels"].numpy()
        for i, row in enumerate(b["index"].numpy()):
            rec = sample_meta(h5, int(row))
            sid = rec["subject_id"]
            rec["metrics"] = {}
            for name in self.names:
                if not fitted[name][i]:
                    self.skipped[name] += 1
                    rec["metrics"][name] = None
                    rec.setdefault("skipped", {})[name] = self.errors.get((int(row), name), "")
                    continue
                p = preds[name][i].astype(np.float64)
                rec["metrics"][name] = self.acc[name].update(p, true[i], mask[i], labels[i], subject=sid)[0]
            self.records.append(rec)
            self.left[sid] = self.left.get(sid, 1) - 1
            if self.left[sid] == 0:
                for acc in self.acc.values():
                    acc.close_subject(sid)
            if len(self.examples) < self.n_examples:
                self.examples.append({
                    "index": int(row), "inputs": b["inputs"][i].numpy().copy(),
                    "present": b["present"][i].numpy().copy(), "targets": b["targets"][i].numpy().copy(),
                    "mask": mask[i].copy(),
                    "predictions": {name: preds[name][i].copy() for name in self.names if fitted[name][i]}})

    def summary(self, n: int) -> dict[str, Any]:
        """``{model: {"metrics", "n_slices", "n_skipped", "seconds_per_slice"}}``."""
        out = {}
        for name in self.names:
            done = n - self.skipped[name]
            out[name] = {"metrics": self.acc[name].result(), "n_slices": done, "n_skipped": self.skipped[name],
                         "seconds_per_slice": self.seconds[name] / max(done, 1)}
        return out


def _evaluate_store(store: str | os.PathLike, scen: str, nets: Mapping[str, Any], split: str,
                    max_samples: int | None, batch: int, device: Any, n_examples: int, nlls_config: Any,
                    progress: bool) -> tuple[dict[str, Any], _Scenario]:
    """Evaluate every model on one store: its ``scenarios`` entry and the finished :class:`_Scenario`."""
    import h5py
    import torch
    from tqdm import tqdm

    ds, chosen = _chosen_samples(store, split, max_samples)
    n = len(chosen)
    h5 = h5py.File(store, "r")
    try:
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, chosen.tolist()), batch_size=int(batch),
                                             shuffle=False, num_workers=0)
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in h5["subject_id"][...]]
        run = _Scenario(list(nets), n_examples, [ids[int(ds.indices[k])] for k in chosen])
        with tqdm(total=n, unit="slice", desc=scen, disable=not progress) as bar:
            for b in loader:
                preds, fitted = run.predict(nets, b, h5, nlls_config, device)
                run.add(b, h5, preds, fitted)
                bar.update(len(b["index"]))
    finally:
        h5.close()
        ds.close()
    entry = {"store": str(Path(store).resolve()), "split": split, "n_samples": n, "n_subjects": len(run.left),
             "models": run.summary(n)}
    return entry, run


def _chosen_samples(store: str | os.PathLike, split: str, max_samples: int | None) -> tuple[Any, np.ndarray]:
    """The store's SynthDataset for ``split`` and the positions in it of the samples evaluated (evenly spaced)."""
    from relaxomap.synth.store.dataset import SynthDataset

    ds = SynthDataset(store, split=None if split == "all" else split)
    n = len(ds) if max_samples is None else min(len(ds), int(max_samples))
    if n == 0:
        ds.close()
        raise ValueError(f"store {store} has no samples in split {split!r} (its subject-wise split is empty); "
                         "use split 'all' (--split all) for a store made only for testing")
    return ds, np.unique(np.linspace(0, len(ds) - 1, n).round().astype(int))


def _check_finite_inputs(stores: Sequence[str | os.PathLike], split: str, max_samples: int | None) -> None:
    """Refuse, before any model runs, a store whose evaluated samples hold NaN or infinity in their inputs or
    targets (the metrics would be meaningless, e.g. an MPE of 1e41 %); the message names store and samples."""
    from relaxomap.synth.store.verify import nonfinite_rows

    for store in stores:
        ds, chosen = _chosen_samples(store, split, max_samples)
        rows = ds.indices[chosen]
        ds.close()
        bad = nonfinite_rows(store, rows)
        if bad:
            shown = "; ".join(str(p) for p in bad[:8]) + (f"; and {len(bad) - 8} more" if len(bad) > 8 else "")
            raise ValueError(f"store {store}: {len(bad)} evaluated sample(s) hold non-finite inputs or targets "
                             f"({shown}); check it with `relaxomap synth inspect {store}` and regenerate it")


# ------------------------------------------------------------------------------------------------ evaluate
def _check_arguments(split: str, max_samples: int | None, batch: int, stores: Sequence[Any]) -> None:
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {list(SPLIT_CHOICES)}; got {split!r}")
    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) < 1):
        raise ValueError(f"max_samples must be a positive integer or None; got {max_samples!r}")
    if isinstance(batch, bool) or int(batch) < 1:
        raise ValueError(f"batch must be a positive integer; got {batch!r}")
    if not stores:
        raise ValueError("evaluate needs at least one store (--store)")


def evaluate(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
             stores: Sequence[str | os.PathLike], *, split: str = "test", max_samples: int | None = None,
             batch: int = 8, device: str = "auto", n_examples: int = 3, nlls_config: Any = None,
             progress: bool = False) -> Evaluation:
    """Evaluate every model on every store (scenario).

    Parameters
    ----------
    models : ``{name: checkpoint path, "nlls" or "oracle-prior"}``, or a sequence of them (names from the
        checkpoints' arch, see :func:`model_names`; the baselines keep their own names).
    stores : synth stores (``relaxomap synth --out``), one scenario each.
    split : ``"test"`` (the store's subject-wise test split; also ``"val"``, ``"train"``) or ``"all"`` (every
        sample, for stores made only for testing).
    max_samples : use at most N samples of each scenario, evenly spaced over it (``None`` = all).
    batch : slices per forward pass of the networks.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ... (:func:`train.device.resolve_device`).
    n_examples : samples per scenario kept for montages.
    nlls_config : :class:`physics.voxel_solver.NLLSConfig` for the baseline (default settings if ``None``).
    progress : print a progress bar.

    Returns
    -------
    :class:`train.evaluation.results.Evaluation` (layout of ``results`` in the module docstring).

    Raises
    ------
    FileNotFoundError
        A checkpoint path that does not exist.
    ValueError
        Bad ``split`` / ``max_samples`` / ``batch``, an unreadable store or checkpoint, a store whose split
        is empty, or evaluated samples holding non-finite inputs or targets (store and samples named).
    """
    from relaxomap.physics.voxel_solver import NLLSConfig

    _check_arguments(split, max_samples, batch, stores)
    _check_finite_inputs(stores, split, max_samples)
    dev = resolve_device(device)
    nets, infos = _load_models(models, dev)
    results: dict[str, Any] = {
        "format": "relaxomap-evaluation", "format_version": EVALUATION_FORMAT_VERSION,
        "meta": {"split": split, "max_samples": max_samples, "device": str(dev), "batch": int(batch),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": __version__},
        "models": infos, "scenarios": {}, "samples": {}, "curves": {},
    }
    examples: dict[str, list[dict[str, Any]]] = {}
    for store, scen in zip(stores, scenario_names(stores)):
        entry, run = _evaluate_store(store, scen, nets, split, max_samples, batch, dev, n_examples,
                                     nlls_config or NLLSConfig(), progress)
        results["scenarios"][scen] = entry
        results["samples"][scen] = run.records
        results["curves"][scen] = binned_curves(run.records, list(nets))
        examples[scen] = run.examples
    return Evaluation(results=json_safe(results), examples=examples)


# ------------------------------------------------------------------------------------------------ pipeline
def run_evaluate(models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
                 stores: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, overwrite: bool = False,
                 **kwargs: Any) -> Evaluation:
    """:func:`evaluate` then :func:`train.evaluation.report.write_outputs` (the ``relaxomap evaluate`` pipeline)."""
    check_output_dir(out_dir, overwrite, what="--out")  # fail before hours of evaluation, not after
    ev = evaluate(models, stores, **kwargs)
    write_outputs(ev, out_dir, overwrite=overwrite)
    return ev
