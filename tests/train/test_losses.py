"""Losses: masked L1 / SSIM on normalised maps and the physics-consistency term."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PRESETS, pack_protocols
from relaxomap.physics.signal import signal_reference
from relaxomap.train.losses import (
    SSIM_DATA_RANGE,
    LossConfig,
    masked_l1,
    masked_ssim_loss,
    physics_consistency_loss,
    total_loss,
)
from relaxomap.train.ssim import ssim_map

B, H, W = 2, 50, 50  # 5000 voxels = the random_maps fixture
PROTOCOLS = [
    [PRESETS["t1w_se_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"]],
    [PRESETS["t1w_tse_1.5t"], PRESETS["t2w_tse_1.5t"], PRESETS["flair_1.5t"]],
]
GAINS = np.array([[0.37, 5.2, 1.0e3], [2.0e-2, 1.0, 80.0]])  # arbitrary per-sample, per-contrast receiver gains


@pytest.fixture(scope="module")
def case(random_maps: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Noise-free closed-form images (float64 NumPy reference) of seeded random maps, with a mask."""
    t1 = random_maps["t1_ms"].reshape(B, H, W).astype(np.float64)
    t2 = random_maps["t2_ms"].reshape(B, H, W).astype(np.float64)
    pd = random_maps["pd"].reshape(B, H, W).astype(np.float64)
    mask = np.zeros((B, 1, H, W), bool)
    mask[:, :, 5:45, 8:42] = True
    mask &= pd[:, None] > 0.05
    inputs = np.stack([signal_reference(t1[b], t2[b], pd[b], PROTOCOLS[b]) * GAINS[b][:, None, None]
                       for b in range(B)])  # (B, 3, H, W)
    maps = np.stack([t1, t2, pd], axis=1)  # (B, 3, H, W)
    rng = np.random.default_rng(7)
    return {
        "maps": torch.tensor(maps, dtype=torch.float32),
        "inputs": torch.tensor(inputs, dtype=torch.float32),
        "protocols": torch.tensor(np.stack([pack_protocols(p) for p in PROTOCOLS])),
        "mask": torch.tensor(mask),
        "pattern": torch.tensor(rng.integers(0, 2, (B, H, W)), dtype=torch.float32),  # random half of voxels
    }


def _phys(maps: torch.Tensor, case: dict, present: torch.Tensor | None = None) -> torch.Tensor:
    return physics_consistency_loss(maps, case["inputs"], case["protocols"], case["mask"], present)


def _scaled(maps: torch.Tensor, k: int, factor: torch.Tensor | float) -> torch.Tensor:
    """``maps`` with channel k multiplied by ``factor`` (out of place, so gradients reach ``factor``)."""
    chans = [maps[:, j] * factor if j == k else maps[:, j] for j in range(3)]
    return torch.stack(chans, dim=1)


# ----------------------------------------------------------------------------- physics consistency
def test_physics_loss_zero_for_true_maps_with_arbitrary_gains(case: dict) -> None:
    loss = _phys(case["maps"], case)
    # float32 rendering of the float64 reference: per-voxel relative rounding ~ 10 ulp (1.2e-7 each)
    assert_allclose(float(loss), 0.0, atol=1e-6)
    loss64 = physics_consistency_loss(case["maps"].double(), case["inputs"].double(), case["protocols"],
                                      case["mask"])
    assert_allclose(float(loss64), 0.0, atol=1e-6)  # float32 inputs bound this one too


@pytest.mark.parametrize("k, name", [(0, "T1"), (1, "T2")])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_physics_loss_grows_with_relaxation_time_error(case: dict, k: int, name: str, sign: float) -> None:
    losses = [float(_phys(_scaled(case["maps"], k, 1.0 + sign * eps), case)) for eps in (0.0, 0.05, 0.20)]
    assert losses[0] < 1e-6 < losses[1] < losses[2], f"{name} x(1 {sign:+.0f} eps): {losses}"


def test_physics_loss_grows_with_pd_error_but_ignores_global_pd_scale(case: dict) -> None:
    # A global PD factor is absorbed by the unknown gain by design; a spatially varying one is an error.
    losses = [float(_phys(_scaled(case["maps"], 2, 1.0 + eps * case["pattern"]), case)) for eps in (0.0, 0.05, 0.2)]
    assert losses[0] < 1e-6 < losses[1] < losses[2], losses
    wrong = _scaled(_scaled(case["maps"], 0, 1.1), 1, 0.9)  # away from the optimum
    alpha = torch.tensor(1.7, requires_grad=True)
    loss_scaled = _phys(_scaled(wrong, 2, alpha), case)
    assert_allclose(float(loss_scaled.detach()), float(_phys(wrong, case)), rtol=1e-5)  # float32 rounding
    (grad_alpha,) = torch.autograd.grad(loss_scaled, alpha)
    # d loss / d alpha is 0 in exact arithmetic (g s is invariant); compare with the size of a real gradient
    beta = torch.tensor(1.0, requires_grad=True)
    (grad_t1,) = torch.autograd.grad(_phys(_scaled(wrong, 0, beta), case), beta)
    assert abs(float(grad_alpha)) < 1e-4 * abs(float(grad_t1)), (float(grad_alpha), float(grad_t1))


def test_physics_loss_gradients_reach_all_maps(case: dict) -> None:
    wrong = _scaled(_scaled(_scaled(case["maps"], 0, 1.1), 1, 0.9), 2, 1.0 + 0.1 * case["pattern"])
    wrong.requires_grad_(True)
    _phys(wrong, case).backward()
    grad = wrong.grad
    assert bool(torch.isfinite(grad).all())
    inside = case["mask"].expand_as(grad)
    for k, name in enumerate(("T1", "T2", "PD")):
        assert float(grad[:, k][inside[:, k]].abs().sum()) > 0, f"no gradient reached {name}"
    assert float(grad[~inside].abs().max()) == 0.0  # voxels outside the mask do not enter


def test_physics_loss_skips_absent_contrasts(case: dict) -> None:
    present = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    wrong = _scaled(case["maps"], 0, 1.1)
    inputs, protocols = case["inputs"].clone(), case["protocols"].clone()
    inputs[0, 2] = torch.rand(H, W) * 1e4
    inputs[1, 1] = -7.0
    protocols[0, 2] = 0.0  # not a valid protocol row: must not be rendered into the result
    protocols[1, 1] = float("nan")
    ref = _phys(wrong, case, present)
    maps = wrong.clone().requires_grad_(True)
    got = physics_consistency_loss(maps, inputs, protocols, case["mask"], present)
    got.backward()
    assert_allclose(float(got.detach()), float(ref), rtol=1e-6)  # same arithmetic on the same present contrasts
    assert bool(torch.isfinite(maps.grad).all())
    # the mean over 4 present contrasts is not the mean over all 6
    assert not math.isclose(float(ref), float(_phys(wrong, case)), rel_tol=1e-3)


def test_physics_loss_rejects_bad_shapes(case: dict) -> None:
    with pytest.raises(ValueError, match="protocols_packed"):
        physics_consistency_loss(case["maps"], case["inputs"], case["protocols"][:, :2], case["mask"])
    with pytest.raises(ValueError, match="mask"):
        physics_consistency_loss(case["maps"], case["inputs"], case["protocols"], case["mask"][:, :, :10])


# ----------------------------------------------------------------------------- L1 and SSIM
def test_masked_l1_closed_form_and_ignores_outside(case: dict) -> None:
    target, mask = case["maps"], case["mask"]
    pred = target.clone()
    pred[:, 0] *= 1.1
    pred[:, 1] *= 0.9
    pred[:, 2] += 0.05
    expected = (math.log(1.1) + abs(math.log(0.9)) + 0.05) / 3  # L1 of ln T1, ln T2, PD, averaged
    assert_allclose(float(masked_l1(pred, target, mask)), expected, rtol=1e-5)  # float32 log of ratios
    assert_allclose(float(masked_l1(pred, target, mask, (1.0, 0.0, 0.0))), math.log(1.1), rtol=1e-5)
    garbage = pred.clone()
    outside = ~mask.expand_as(pred)
    garbage[outside] = torch.rand(int(outside.sum())) * 1e5
    garbage.requires_grad_(True)
    loss = masked_l1(garbage, target, mask)
    assert float(loss.detach()) == float(masked_l1(pred, target, mask))
    loss.backward()
    assert float(garbage.grad[outside].abs().max()) == 0.0
    assert float(garbage.grad[~outside].abs().min()) > 0.0


def test_ssim_map_matches_skimage() -> None:
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 37)).cumsum(axis=0) * 0.1
    b = a + rng.normal(scale=0.2, size=a.shape)
    ours = ssim_map(torch.tensor(a)[None, None], torch.tensor(b)[None, None], (2.0,))[0, 0].numpy()
    _, ref = skimage_metrics.structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False, full=True)
    # same 11-tap Gaussian (skimage truncates at 3.5 sigma = radius 5); borders differ in padding mode only
    assert_allclose(ours[5:-5, 5:-5], ref[5:-5, 5:-5], rtol=0, atol=1e-10)  # float64 rounding


def test_masked_ssim_zero_when_equal_grows_with_error_ignores_outside(case: dict) -> None:
    target, mask = case["maps"], case["mask"]
    assert_allclose(float(masked_ssim_loss(target, target, mask)), 0.0, atol=1e-6)  # float32 rounding
    rng = torch.Generator().manual_seed(5)
    noise = torch.randn(target.shape, generator=rng)
    losses = [float(masked_ssim_loss(target * torch.exp(eps * noise), target, mask)) for eps in (0.02, 0.1, 0.3)]
    assert losses[0] < losses[1] < losses[2]
    pred = target * torch.exp(0.1 * noise)
    garbage = pred.clone()
    outside = ~mask.expand_as(pred)
    garbage[outside] = 1e4
    assert float(masked_ssim_loss(garbage, target, mask)) == float(masked_ssim_loss(pred, target, mask))


def test_masked_ssim_of_constant_maps_uses_the_documented_data_ranges() -> None:
    """Two constant images a, b: every window has zero variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1) with
    C1 = (0.01 L)^2, L the map's documented dynamic range (ln(6000/50), ln(3000/5) in normalised T1 / T2 units,
    1.2 for PD). A wrong range, a missing channel or a swapped order moves the loss off this closed form."""
    pred_phys = (1200.0, 80.0, 0.70)  # [T1 ms, T2 ms, PD]
    true_phys = (900.0, 100.0, 0.75)
    pred = torch.tensor(pred_phys, dtype=torch.float64).reshape(1, 3, 1, 1).expand(1, 3, 24, 24).clone()
    true = torch.tensor(true_phys, dtype=torch.float64).reshape(1, 3, 1, 1).expand(1, 3, 24, 24).clone()
    mask = torch.ones(1, 1, 24, 24, dtype=torch.bool)
    a = (math.log(1200.0 / 1000.0), math.log(80.0 / 100.0), 0.70)  # normalised: ln(T1/1000), ln(T2/100), PD
    b = (math.log(900.0 / 1000.0), math.log(100.0 / 100.0), 0.75)
    ranges = (math.log(6000.0 / 50.0), math.log(3000.0 / 5.0), 1.2)
    per_map = [1.0 - (2 * x * y + (0.01 * r) ** 2) / (x * x + y * y + (0.01 * r) ** 2) for x, y, r in zip(a, b, ranges)]
    weights = (1.0, 2.0, 0.5)
    expected = sum(w * v for w, v in zip(weights, per_map)) / sum(weights)
    got = float(masked_ssim_loss(pred, true, mask, weights))
    assert_allclose(got, expected, rtol=1e-12)  # float64 throughout
    assert_allclose(SSIM_DATA_RANGE, ranges, rtol=0)


# ----------------------------------------------------------------------------- combined
def _batch(case: dict) -> dict[str, torch.Tensor]:
    params = torch.tensor([[[p.tr_ms, p.te_ms, p.ti_ms] for p in prots] for prots in PROTOCOLS])
    return {"inputs": case["inputs"], "targets": case["maps"], "params": params, "protocols": case["protocols"],
            "present": torch.ones(B, 3), "mask": case["mask"]}


def test_total_loss_is_the_weighted_sum_of_its_parts(case: dict) -> None:
    batch = _batch(case)
    pred = _scaled(case["maps"], 0, 1.2).requires_grad_(True)
    cfg = LossConfig(l1=1.0, ssim=0.5, physics=0.2)
    loss, parts = total_loss(pred, batch, cfg)
    assert set(parts) == {"l1", "ssim", "physics", "total"}
    expected = parts["l1"] + 0.5 * parts["ssim"] + 0.2 * parts["physics"]
    assert_allclose(float(loss.detach()), float(expected), rtol=1e-6)
    assert_allclose(float(parts["l1"]), math.log(1.2) / 3, rtol=1e-5)
    loss.backward()
    assert bool(torch.isfinite(pred.grad).all())
    assert not parts["total"].requires_grad

    only_l1 = {k: v for k, v in batch.items() if k in ("targets", "mask")}
    loss1, parts1 = total_loss(pred, only_l1, LossConfig(physics=0.0))
    assert set(parts1) == {"l1", "total"}
    with pytest.raises(ValueError, match="inputs"):
        total_loss(pred, only_l1, LossConfig(physics=0.1))


def test_loss_config_validation_and_round_trip() -> None:
    cfg = LossConfig(l1=2.0, ssim=0.3, physics=0.05, map_weights=(1.0, 0.5, 2.0))
    assert LossConfig.from_dict(cfg.to_dict()) == cfg
    for bad, message in (({"l1": -1.0}, r"LossConfig\.l1 .*-1\.0"), ({"physics": float("nan")}, r"LossConfig\.physics"),
                         ({"map_weights": (0.0, 0.0, 0.0)}, r"map_weights .*not all 0"),
                         ({"map_weights": (1, 2)}, r"map_weights")):
        with pytest.raises(ValueError, match=message):
            LossConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        LossConfig.from_dict({"l2": 1.0})
