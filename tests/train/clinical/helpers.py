"""Test inputs of the clinical pipeline: a tiny random checkpoint and a synthetic head written as NIfTI files with
BIDS sidecars (times in seconds)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from relaxomap.model.config import ModelConfig
from relaxomap.model.unet import build_model
from relaxomap.train.checkpoint import save_checkpoint
from relaxomap.train.clinical.nifti import save_nifti

TINY = ModelConfig(base_channels=8, channel_mults=(1, 2), groups=4, emb_dim=16, n_fourier=4, mid_blocks=1)
#: (TR, TE, TI) [ms] of the test case; TI None = no InversionTime in the sidecar.
CASE_PARAMS = {"T1w": (600.0, 10.0, None), "T2w": (5000.0, 100.0, None), "FLAIR": (9000.0, 120.0, 2500.0)}
SHAPE = (36, 40, 6)


def make_tiny_checkpoint(path: Path, extra: dict | None = None) -> Path:
    """A randomly initialised 2-level network saved through the checkpoint API."""
    torch.manual_seed(0)
    return save_checkpoint(path, model=build_model(TINY), model_config=TINY, step=0, extra=extra)


def head_phantom(shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    """A bright 'brain' ellipsoid inside a dark 'skull' gap and a 'scalp' shell, with mild noise (float32)."""
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    r = np.sqrt(x**2 + y**2 + (0.6 * z) ** 2)
    img = np.where(r < 0.6, 100.0, 0.0) + np.where((r > 0.75) & (r < 0.9), 70.0, 0.0)
    return (img * (1 + 0.05 * np.random.default_rng(seed).random(shape))).astype(np.float32)


def case_affine(voxel=(1.0, 1.0, 3.0), shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.diag([*voxel, 1.0])
    a[:3, 3] = np.array([-18.0, -20.0, -9.0]) + np.asarray(shift)
    return a


def write_case(directory: Path, *, params=CASE_PARAMS, affine=None, data=None) -> dict[str, Path]:
    """T1w/T2w/FLAIR .nii.gz + BIDS sidecars (seconds) in ``directory``; returns {contrast: path}."""
    directory.mkdir(parents=True, exist_ok=True)
    affine = case_affine() if affine is None else affine
    data = head_phantom() if data is None else data
    paths = {}
    for name, (tr, te, ti) in params.items():
        nib.save(nib.Nifti1Image(data, affine), directory / f"{name}.nii.gz")
        side = {"RepetitionTime": tr / 1000.0, "EchoTime": te / 1000.0}  # BIDS: seconds
        if ti is not None:
            side["InversionTime"] = ti / 1000.0
        (directory / f"{name}.json").write_text(json.dumps(side))
        paths[name.lower()] = directory / f"{name}.nii.gz"
    return paths


WM = (850.0, 75.0, 0.70)  # 3 T white matter: T1 [ms], T2 [ms], PD
MAPS_SHAPE = (6, 5, 20)  # more slices than one render slab, so the slab loop is exercised


def write_maps(directory: Path, t1: float, t2: float, pd: float, affine: np.ndarray) -> Path:
    """A maps directory (T1_ms, T2_ms, PD NIfTI files) of one uniform tissue on a MAPS_SHAPE grid."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in (("T1_ms", t1), ("T2_ms", t2), ("PD", pd)):
        save_nifti(directory / f"{name}.nii.gz", np.full(MAPS_SHAPE, value, np.float32), affine)
    return directory


def predict_cli(paths: dict[str, Path], ckpt: Path, out: Path, *extra: str) -> object:
    """``relaxomap predict`` on ``{contrast: file}`` with a checkpoint, through click's test runner."""
    from click.testing import CliRunner

    from relaxomap.train.cli import main

    args = ["predict", "--out", str(out), "--checkpoint", str(ckpt), "--quiet", *extra]
    for c, p in paths.items():
        args += [f"--{c}", str(p)]
    return CliRunner().invoke(main, args)


def assert_refused(res: object, out: Path, *parts: str) -> None:
    """Exit status 1, one ``Error:`` message holding every part, no traceback, nothing left at ``out``."""
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and "Traceback" not in res.output
    for part in parts:
        assert part in res.output, (part, res.output)
    assert not out.exists() and not list(out.parent.glob(f"{out.name}.tmp-*"))
