"""``relaxomap demo``: a held-out synthetic case, end to end, on a fresh install with no data.

1. Draw a procedural head phantom with lesions (:func:`synth.sources.draw_subject`) whose seed lies outside
   every training store's seeds (see :data:`DEMO_ENTROPY`), and keep an axial slab of ``n_slices`` slices.
2. Draw a clinical T1w / T2w / T2-FLAIR protocol (:func:`synth.protocols.sample_protocols`, with the ranges
   the model was trained on when its checkpoint records them), render the images with the physics forward
   model (:func:`synth.generate.render_signal`) and add Rician noise at SNR ``snr`` -- the SNR definition of
   :mod:`synth.artefacts`: mean |signal| over the brain mask / σ per real and imaginary channel -- and an
   arbitrary scanner gain.
3. Write the images as NIfTI with BIDS sidecars (times in seconds), the true maps, brain mask and labels.
4. Run :func:`train.clinical.predict.run_predict` on those files (with the true brain mask, so the metrics measure
   the network, not the skull stripping; the automatic mask's Dice against the truth is reported too).
5. Metrics (:mod:`train.evaluation.metrics`, every definition there): the parenchyma (brain without CSF) with
   PSNR / SSIM on the fixed physiological range, the MAE, MPE and signed bias of each tissue, PD scored after
   anchoring on the case's CSF (``pd_csf``; the raw PD beside it), and the whole brain mask (peak = CSF
   maximum) labelled as such; printed and saved as ``metrics.json`` / ``metrics.md``, and ``figure.png``
   (inputs, truth, prediction, error on the middle slice). The case is one subject, so no sd over subjects.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from relaxomap.atomic import check_output_dir
from relaxomap.physics.protocol import CONTRASTS
from relaxomap.synth.orientation import axial_to_image
from relaxomap.train.clinical.nifti import save_nifti, write_json
from relaxomap.train.clinical.map_files import MAP_FILES, MASK_FILE
from relaxomap.train.clinical.predict import load_prediction_model, run_predict
from relaxomap.train.clinical.sidecar import CONTRAST_LABELS, bids_sidecar_dict
from relaxomap.train.clinical.training_facts import demo_field_t, forward_model, protocol_ranges, training_ranges
from relaxomap.train.device import resolve_device

__all__ = ["DEMO_ENTROPY", "demo_source", "rician", "make_case", "run_demo", "format_table"]

#: Entropy of the demo's seed sequence. Training stores derive subject seeds from ``SynthConfig.seed``
#: (small integers in practice) with :func:`synth.generate.derive_seed`; the demo derives them from this
#: constant, so its anatomy, lesions, protocol and noise are not those of any training sample unless a store
#: is generated with ``seed = DEMO_ENTROPY``.
DEMO_ENTROPY = 0x5EED_DE30
_TRUTH_FILES = {**MAP_FILES, "mask": MASK_FILE, "labels": "labels.nii.gz"}


def demo_source(n_slices: int = 20, field_t: float = 3.0) -> Any:
    """The demo's map source: a procedural phantom slab of ``n_slices`` 1 mm axial slices through the lateral
    ventricles (slab centre 5-20 mm above the brain centre), always with MS plaques and a tumour."""
    import dataclasses

    from relaxomap.synth.lesions import LesionConfig
    from relaxomap.synth.phantom.config import PhantomConfig
    from relaxomap.synth.sources import SourceConfig

    lesions = dataclasses.replace(LesionConfig(), p_ms=1.0, p_tumour=1.0)
    phantom = PhantomConfig(shape=(224, 256, int(n_slices)), slab_center_mm=(5.0, 20.0))
    return SourceConfig(kind="phantom", lesions=lesions, phantom=phantom, field_t=field_t)


def _affine(shape: tuple[int, ...], voxel_mm: np.ndarray) -> np.ndarray:
    """RAS+ affine with the given voxel size, the volume centred on the world origin."""
    aff = np.diag([*(float(v) for v in voxel_mm), 1.0])
    aff[:3, 3] = -0.5 * (np.asarray(shape[:3]) - 1) * np.asarray(voxel_mm, np.float64)
    return aff


def rician(signal: np.ndarray, mask: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """|s + σ(n₁ + i n₂)| with σ = mean(|s| over mask) / snr (the synth.artefacts SNR definition)."""
    mean = float(np.abs(signal[mask]).mean())
    sigma = mean / snr
    n = rng.standard_normal((2, *signal.shape)).astype(np.float32) * np.float32(sigma)
    return np.hypot(signal + n[0], n[1]).astype(np.float32)


def make_case(seed: int = 0, *, n_slices: int = 20, snr: float | None = None, ranges: Any = None,
              forward: str = "closed", field_t: float = 3.0) -> dict[str, Any]:
    """Simulate one held-out case (steps 1-2 of the module docstring); pure, no files.

    Returns
    -------
    dict with ``maps`` (:class:`synth.maps.Maps`, (X, Y, Z)), ``images`` {contrast: (X, Y, Z) float32},
    ``protocols`` {contrast: Protocol}, ``snr`` {contrast: float}, ``affine`` (4, 4), ``seed``.
    """
    from relaxomap.synth.generate import derive_seed, render_signal
    from relaxomap.synth.protocols import ProtocolRanges, sample_protocols
    from relaxomap.synth.sources import draw_subject

    maps = draw_subject(demo_source(n_slices, field_t), derive_seed(DEMO_ENTROPY, 0, seed))
    if not maps.mask.any():
        raise ValueError(f"demo phantom for seed {seed} has an empty brain mask")
    rng = np.random.default_rng(derive_seed(DEMO_ENTROPY, 2, seed))
    prots = sample_protocols(rng, ranges if ranges is not None else ProtocolRanges(), maps.field_t)
    snrs = [float(snr) if snr is not None else float(math.exp(rng.uniform(math.log(20.0), math.log(40.0))))
            for _ in CONTRASTS]
    gain = 1000.0 * float(math.exp(rng.uniform(-1.0, 1.0)))  # arbitrary scanner scaling
    clean = render_signal(maps.t1_ms, maps.t2_ms, maps.pd, tuple(prots), forward)  # (3, X, Y, Z)
    images = {c: rician(clean[i], maps.mask, snrs[i], rng) * np.float32(gain) for i, c in enumerate(CONTRASTS)}
    return {"maps": maps, "images": images, "protocols": dict(zip(CONTRASTS, prots)),
            "snr": dict(zip(CONTRASTS, snrs)), "gain": gain, "affine": _affine(maps.shape, maps.voxel_mm),
            "seed": seed, "subject_seed": derive_seed(DEMO_ENTROPY, 0, seed)}


def _metrics(pred: Mapping[str, np.ndarray], maps: Any) -> dict[str, Any]:
    from relaxomap.train.evaluation.accumulate import MetricAccumulator

    acc = MetricAccumulator()
    truth = maps.stack()  # (3, X, Y, Z)
    p = np.stack([pred[k] for k in MAP_FILES])
    for k in range(truth.shape[3]):
        if maps.mask[:, :, k].any():
            acc.update(np.stack([axial_to_image(p[c, :, :, k]) for c in range(3)]),
                       np.stack([axial_to_image(truth[c, :, :, k]) for c in range(3)]),
                       axial_to_image(maps.mask[:, :, k]), axial_to_image(maps.labels[:, :, k]),
                       subject=maps.subject_id)
    return acc.result()


def format_table(result: Mapping[str, Any]) -> str:
    """Markdown tables of a demo's metrics: the parenchyma (MPE, signed bias, MAE, PSNR / SSIM on the fixed range),
    the MPE and signed bias per tissue, the mean truth and prediction per tissue, and the whole brain mask."""
    from relaxomap.train.evaluation.tables import (
        PARENCHYMA_NOTE,
        WHOLE_NOTE,
        parenchyma_table,
        pd_anchor_note,
        tissue_table,
        whole_table,
    )

    res = {"prediction": result}
    lines = ["Parenchyma (brain without CSF):", "", parenchyma_table(res), "", "Per tissue:", "", tissue_table(res)]
    tissues = result.get("tissue", {})
    if tissues:
        lines += ["", "| tissue | T1 true / pred [ms] | T2 true / pred [ms] | PD true / pred (CSF = 1) | "
                  "PD pred raw | voxels |", "|---|---|---|---|---|---|"]
        for t, maps in tissues.items():
            cells = [f"{maps[n]['mean_true']:.4g} / {maps[n]['mean_pred']:.4g}" for n in ("t1", "t2", "pd_csf")]
            lines.append(f"| {t} | {' | '.join(cells)} | {maps['pd']['mean_pred']:.4g} | {maps['t1']['n_voxels']} |")
    lines += ["", "Whole brain mask (peak = CSF maximum) and whole slice:", "", whole_table(res), "",
              PARENCHYMA_NOTE, WHOLE_NOTE, pd_anchor_note(res)]
    return "\n".join(lines)


def _figure(path: Path, case: Mapping[str, Any], pred: Mapping[str, np.ndarray], z: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = case["maps"]
    mask = axial_to_image(maps.mask[:, :, z])
    truth = {"t1_ms": maps.t1_ms, "t2_ms": maps.t2_ms, "pd": maps.pd}
    limits = {"t1_ms": (0, 4500), "t2_ms": (0, 300), "pd": (0, 1.1)}
    titles = {"t1_ms": "T1 [ms]", "t2_ms": "T2 [ms]", "pd": "PD"}
    fig, axes = plt.subplots(4, 3, figsize=(10, 13), constrained_layout=True)
    for j, c in enumerate(CONTRASTS):
        p = case["protocols"][c]
        img = axial_to_image(case["images"][c][:, :, z])
        ax = axes[0, j]
        ax.imshow(img, cmap="gray", vmin=0, vmax=float(np.percentile(img, 99.5)) or 1.0)
        ti = f" TI {p.ti_ms:.0f}" if p.ti_ms else ""
        ax.set_title(f"{CONTRAST_LABELS[c]} ({p.kind})\nTR {p.tr_ms:.0f} TE {p.te_ms:.0f}{ti} ms, "
                     f"SNR {case['snr'][c]:.0f}", fontsize=9)
    for j, k in enumerate(MAP_FILES):
        t = axial_to_image(truth[k][:, :, z]) * mask
        q = axial_to_image(pred[k][:, :, z]) * mask
        lo, hi = limits[k]
        for row, data, label in ((1, t, "truth"), (2, q, "prediction")):
            im = axes[row, j].imshow(data, cmap="magma", vmin=lo, vmax=hi)
            axes[row, j].set_title(f"{label} {titles[k]}", fontsize=9)
            fig.colorbar(im, ax=axes[row, j], shrink=0.7)
        err = (q - t) * mask
        lim = float(np.percentile(np.abs(err[mask]), 98)) if mask.any() else 1.0
        im = axes[3, j].imshow(err, cmap="RdBu_r", vmin=-lim or -1, vmax=lim or 1)
        axes[3, j].set_title(f"prediction - truth {titles[k]}", fontsize=9)
        fig.colorbar(im, ax=axes[3, j], shrink=0.7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"relaxomap demo, case {case['seed']} (held-out phantom, axial slice {z})")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _write_case(out: Path, case: Mapping[str, Any]) -> tuple[dict[str, Path], Path]:
    """Write the inputs (NIfTI + BIDS sidecars) and the truth of a case; returns the input paths and the true
    brain mask's path."""
    maps, aff = case["maps"], case["affine"]
    inputs = out / "inputs"
    truth = out / "truth"
    inputs.mkdir(parents=True)
    truth.mkdir()
    paths = {}
    for c in CONTRASTS:
        p = inputs / f"{CONTRAST_LABELS[c]}.nii.gz"
        save_nifti(p, case["images"][c], aff, description=f"relaxomap demo {c}")
        write_json(inputs / f"{CONTRAST_LABELS[c]}.json",
                   bids_sidecar_dict(case["protocols"][c], RelaxomapDemoSNR=case["snr"][c]))
        paths[c] = p
    for k, arr in (("t1_ms", maps.t1_ms), ("t2_ms", maps.t2_ms), ("pd", maps.pd),
                   ("mask", maps.mask.astype(np.float32)), ("labels", maps.labels.astype(np.float32))):
        save_nifti(truth / _TRUTH_FILES[k], arr, aff, description=f"relaxomap demo truth {k}")
    return paths, truth / _TRUTH_FILES["mask"]


def _score(out: Path, case: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """Metrics of the written prediction against the truth, the automatic mask's Dice, and the figure."""
    import nibabel as nib

    from relaxomap.train.clinical.brainmask import auto_brain_mask

    maps = case["maps"]
    pred = {k: np.asarray(nib.load(out / "prediction" / f).dataobj, np.float32) for k, f in MAP_FILES.items()}
    result = _metrics(pred, maps)
    auto = auto_brain_mask([case["images"][c] for c in CONTRASTS], maps.voxel_mm)
    dice = float(2 * (auto & maps.mask).sum() / max(1, auto.sum() + maps.mask.sum()))
    area = maps.mask.sum(axis=(0, 1))  # (Z,) brain voxels per slice
    z = maps.shape[2] // 2 if area[maps.shape[2] // 2] > 0 else int(np.argmax(area))
    _figure(out / "figure.png", case, pred, z)
    return result, dice


def _markdown(seed: int, maps: Any, model: Mapping[str, Any], dice: float, table: str) -> str:
    return (f"# relaxomap demo, case {seed}\n\nHeld-out phantom `{maps.subject_id}` ({maps.shape[2]} axial slices, "
            f"{maps.field_t:g} T), model `{model['path']}` (sha256 {model['sha256'][:12]}...).\n"
            f"Metrics inside the true brain mask ({int(maps.mask.sum())} voxels; definitions in "
            f"train/evaluation/metrics.py); one subject: PSNR/SSIM are means over its slices, MAE/MPE/bias pooled "
            f"over its voxels. Automatic brain mask Dice vs truth: {dice:.3f}.\n\n"
            f"{table}\n")


def run_demo(out_dir: str | Path, *, seed: int = 0, checkpoint: str | Path | None = None, device: str = "auto",
             n_slices: int = 20, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo (module docstring) into ``out_dir``; returns a report dict.

    Returns
    -------
    ``{"case", "model", "metrics": MetricAccumulator result, "auto_mask_dice": float, "training_ranges_ms",
    "warnings": [...], "runtime_s": float}``; the same is saved as ``metrics.json``.

    Raises
    ------
    FileNotFoundError
        If no checkpoint is found (the default model is missing and ``checkpoint`` is None).
    ValueError
        If ``out_dir`` is not empty and ``overwrite`` is False.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    check_output_dir(out, overwrite)
    # the model first: a missing checkpoint should fail before minutes of simulation
    _model, _config, meta, _info = load_prediction_model(checkpoint, resolve_device("cpu"))
    del _model
    ranges = protocol_ranges(meta)
    forward = forward_model(meta)
    case = make_case(seed, n_slices=n_slices, ranges=ranges, forward=forward, field_t=demo_field_t(meta, ranges))
    maps = case["maps"]
    created = not out.exists()
    if out.exists() and overwrite:
        shutil.rmtree(out)
    try:
        paths, truth_mask = _write_case(out, case)
        prov = run_predict(paths, out / "prediction", checkpoint=checkpoint, mask_path=truth_mask, device=device,
                           progress=progress)
        result, dice = _score(out, case)
        report = {
            "case": {"seed": seed, "subject_seed": case["subject_seed"], "demo_entropy": DEMO_ENTROPY,
                     "subject_id": maps.subject_id, "source": maps.source, "field_t": maps.field_t,
                     "shape": list(maps.shape), "voxel_mm": maps.voxel_mm.tolist(),
                     "protocols": {c: p.to_dict() for c, p in case["protocols"].items()},
                     "snr": case["snr"], "forward_model": forward},
            "model": prov["model"],
            "metrics": result,
            "auto_mask_dice": dice,
            "training_ranges_ms": training_ranges(meta),
            "warnings": prov["warnings"],
            "runtime_s": round(time.perf_counter() - t0, 2),
        }
        write_json(out / "metrics.json", report)
        (out / "metrics.md").write_text(_markdown(seed, maps, prov["model"], dice, format_table(result)))
        return report
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
