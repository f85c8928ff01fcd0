"""The U-Net family: shapes, output range, conditioning, presence flags, gradients, config round trip."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from relaxomap.model import (
    ARCHS,
    MAP_FLOOR_MS,
    ModelConfig,
    bounded,
    build_model,
    count_parameters,
    from_normalised,
    to_normalised,
)

# (TR, TE, TI) [ms] of clinical T1w SE, T2w TSE and T2-FLAIR at 3 T.
CLINICAL = torch.tensor([[600.0, 10.0, 0.0], [5000.0, 100.0, 0.0], [9000.0, 125.0, 2500.0]])
OTHER = torch.tensor([[450.0, 15.0, 0.0], [3000.0, 80.0, 0.0], [11000.0, 140.0, 2800.0]])


def _inputs(b: int = 2, h: int = 67, w: int = 91, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, h, w, generator=g) * 2.0
    return images, CLINICAL.expand(b, 3, 3).clone()


def _model(arch: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch=arch, **kw)).eval()


def _randomise_film(model: torch.nn.Module, seed: int = 1) -> int:
    """Give every FiLM projection non-zero weights (as after training); returns how many blocks have one."""
    g = torch.Generator().manual_seed(seed)
    n = 0
    for module in model.modules():
        if getattr(module, "film", None) is not None:
            with torch.no_grad():
                module.film.weight.copy_(torch.randn(module.film.weight.shape, generator=g) * 0.05)
            n += 1
    return n


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(67, 91), (16, 16), (33, 8)])
def test_output_shape_positive_finite_within_bounds(arch: str, size: tuple[int, int]) -> None:
    model = _model(arch)
    images, params = _inputs(h=size[0], w=size[1])
    with torch.no_grad():
        maps = model(images, params)
    assert maps.shape == (2, 3, *size)
    assert maps.dtype == torch.float32
    assert bool(torch.isfinite(maps).all())
    cfg = model.config
    for k, (lo, hi) in enumerate((cfg.t1_bounds_ms, cfg.t2_bounds_ms, cfg.pd_bounds)):
        # inside the bounds (bounded() is a smooth clamp), hence positive for T1/T2 (lower bounds > 0)
        assert float(maps[:, k].min()) >= lo and float(maps[:, k].max()) <= hi
    assert float(maps[:, :2].min()) > 0.0


def test_extreme_inputs_stay_finite_and_bounded() -> None:
    # huge intensities drive the head far outside the bounds: exp must not overflow
    model = _model("pe-unet")
    images, params = _inputs(h=32, w=32)
    with torch.no_grad():
        maps = model(images * 1e6, params)
    assert bool(torch.isfinite(maps).all())
    assert float(maps[:, 0].max()) < model.config.t1_bounds_ms[1]


def test_film_is_zero_at_init_then_conditions_pe_unet_only() -> None:
    images, params = _inputs()
    other = OTHER.expand(2, 3, 3)
    pe = _model("pe-unet")
    with torch.no_grad():
        # zero-initialised FiLM: a fresh pe-unet ignores the parameters exactly
        assert torch.equal(pe(images, params), pe(images, other))
        n_film = _randomise_film(pe)
        a, b = pe(images, params), pe(images, other)
    cfg = pe.config
    n_blocks = len(cfg.channel_mults) * 2 * cfg.blocks_per_level + cfg.mid_blocks
    assert n_film == n_blocks  # every residual block carries FiLM
    rel = float(((a - b).abs() / a).mean())
    assert rel > 1e-3, f"pe-unet output changed by only {rel:.2e} (relative) when TR/TE/TI changed"

    plain = _model("unet")
    assert _randomise_film(plain) == 0  # no block of the plain U-Net has FiLM
    with torch.no_grad():
        assert torch.equal(plain(images, params), plain(images, other))
        assert torch.equal(plain(images, params), plain(images, None))


def test_channels_baseline_uses_params_without_film() -> None:
    model = _model("channels")
    assert _randomise_film(model) == 0
    images, params = _inputs()
    with torch.no_grad():
        a = model(images, params)
        b = model(images, OTHER.expand(2, 3, 3))
    assert a.shape == (2, 3, 67, 91)
    assert float(((a - b).abs() / a).mean()) > 1e-3
    with pytest.raises(ValueError, match="params"):
        model(images, None)


@pytest.mark.parametrize("arch", ARCHS)
def test_missing_contrast_content_and_times_have_no_effect(arch: str) -> None:
    model = _model(arch)
    _randomise_film(model)
    images, params = _inputs()
    present = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # T1w + T2w only
    images2, params2 = images.clone(), params.clone()
    images2[:, 2] = torch.randn_like(images2[:, 2]) * 5.0
    params2[:, 2] = torch.tensor([7000.0, 90.0, 2000.0])
    with torch.no_grad():
        a = model(images, params, present)
        b = model(images2, params2, present)
        full = model(images, params, None)
        ones = model(images, params, torch.ones(2, 3))
        c = model(images2, params, None)
    assert torch.equal(a, b)  # exact: the channel is zeroed before the first layer, the times before the MLP
    assert torch.equal(full, ones)  # None means all present
    assert not torch.allclose(a, full)  # the flag itself reaches the network
    assert not torch.allclose(c, full)  # and a present contrast's content does matter


def test_gradients_reach_embedding_mlp_after_first_step() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="pe-unet"))
    images, _ = _inputs(b=4, h=32, w=32)
    params = torch.stack([CLINICAL, OTHER, CLINICAL * 1.1, OTHER * 0.9])
    target = torch.tensor([1200.0, 90.0, 0.75])[None, :, None, None].expand(4, 3, 32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)

    def step() -> None:
        opt.zero_grad()
        loss = (to_normalised(model(images, params)) - to_normalised(target)).abs().mean()
        loss.backward()

    step()
    film = [m.film for m in model.modules() if getattr(m, "film", None) is not None]
    assert all(float(f.weight.grad.abs().sum()) > 0 for f in film)  # FiLM can start learning at once
    opt.step()
    step()
    for name, p in model.embedding.mlp.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, f"no gradient reached embedding.mlp.{name}"


def test_config_json_round_trip_and_checkpoint_reload() -> None:
    cfg = ModelConfig(arch="channels", base_channels=16, channel_mults=(1, 2, 2), blocks_per_level=2,
                      groups=4, emb_dim=32, n_fourier=8, fourier_scale=2.0, dropout=0.1,
                      t1_bounds_ms=(10.0, 9000.0))
    back = ModelConfig.from_json(cfg.to_json())
    assert back == cfg and isinstance(back.channel_mults, tuple)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()

    torch.manual_seed(0)
    model = build_model(ModelConfig(n_fourier=8)).eval()
    _randomise_film(model)
    state = model.state_dict()
    assert "embedding.freqs" in state  # the Fourier frequencies travel with the checkpoint
    clone = build_model(ModelConfig.from_dict(model.config.to_dict())).eval()
    clone.load_state_dict(state)
    images, params = _inputs(h=24, w=40)
    with torch.no_grad():
        assert torch.equal(model(images, params), clone(images, params))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"arch": "resnet"}, "arch"),
        ({"groups": 5}, "groups"),
        ({"channel_mults": ()}, "channel_mults"),
        ({"dropout": 1.5}, "dropout"),
        ({"t1_bounds_ms": (100.0, 10.0)}, "t1_bounds_ms"),
        ({"te_scale_ms": 0.0}, "te_scale_ms"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_config_rejects_unknown_keys_and_bad_types() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({"arch": "unet", "width": 3})
    with pytest.raises(TypeError, match="base_channels"):
        ModelConfig(base_channels=32.5)


def test_forward_rejects_bad_inputs() -> None:
    model = _model("pe-unet")
    images, params = _inputs(h=16, w=16)
    with pytest.raises(ValueError, match="images"):
        model(images[:, :2], params)
    with pytest.raises(ValueError, match="params"):
        model(images, params[:, :, :2])
    with pytest.raises(ValueError, match=">= 0"):
        model(images, -params)
    with pytest.raises(ValueError, match="present"):
        model(images, params, torch.ones(2, 2))
    with pytest.raises(ValueError, match="required"):
        model(images, None)
    with pytest.raises(TypeError, match="ModelConfig"):
        build_model({"arch": "unet"})


def _expected_parameters(cfg: ModelConfig) -> int:
    """Parameter count of the documented architecture, written out by hand from model/unet.py's docstring:
    stem conv, per level ``blocks_per_level`` residual blocks and a strided down conv, ``mid_blocks`` blocks,
    per level an upsampling conv and blocks whose first takes the skip concatenation, a GroupNorm + 1x1 head;
    FiLM (Linear(emb, 2 out)) in every block and the embedding MLP for pe-unet only."""
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731  weights + bias
    norm = lambda c: 2 * c  # noqa: E731  GroupNorm affine
    film = cfg.arch == "pe-unet"

    def block(i: int, o: int) -> int:
        return (norm(i) + conv(i, o, 3) + norm(o) + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)
                + ((cfg.emb_dim * 2 * o + 2 * o) if film else 0))

    chans = [cfg.base_channels * m for m in cfg.channel_mults]
    c_in = 2 * cfg.in_contrasts + (3 * cfg.in_contrasts if cfg.arch == "channels" else 0)
    n, ch = conv(c_in, chans[0], 3), chans[0]
    for level, lc in enumerate(chans):  # encoder
        for _ in range(cfg.blocks_per_level):
            n, ch = n + block(ch, lc), lc
        if level < len(chans) - 1:
            n, ch = n + conv(ch, chans[level + 1], 3), chans[level + 1]
    n += cfg.mid_blocks * block(ch, ch)
    for level in reversed(range(len(chans))):  # decoder
        lc = chans[level]
        if level < len(chans) - 1:
            n, ch = n + conv(ch, lc, 3), lc
        n += block(ch + lc, lc) + (cfg.blocks_per_level - 1) * block(lc, lc)
    n += norm(ch) + conv(ch, 3, 1)
    if film:  # Linear(4C + 2 n_fourier, emb), Linear(emb, emb)
        width = 4 * cfg.in_contrasts + 2 * cfg.n_fourier
        n += width * cfg.emb_dim + cfg.emb_dim + cfg.emb_dim * cfg.emb_dim + cfg.emb_dim
    return n


@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_pinned_by_parameter_count(arch: str) -> None:
    # The count written out by hand pins every layer's shape; 1-3 M parameters train on 2 CPU cores.
    cfg = ModelConfig(arch=arch)
    n = count_parameters(build_model(cfg))
    assert n == _expected_parameters(cfg)
    small = ModelConfig(arch=arch, base_channels=16, channel_mults=(1, 2, 3), blocks_per_level=2, mid_blocks=2,
                        groups=4, emb_dim=24, n_fourier=5)
    assert count_parameters(build_model(small)) == _expected_parameters(small)
    assert 1_000_000 <= n <= 3_000_000


def test_normalised_round_trip_and_floor() -> None:
    rng = np.random.default_rng(0)
    t1 = np.exp(rng.uniform(np.log(50.0), np.log(6000.0), 1000))
    t2 = np.exp(rng.uniform(np.log(5.0), np.log(3000.0), 1000))
    pd = rng.uniform(0.0, 1.2, 1000)
    maps = torch.tensor(np.stack([t1, t2, pd])[None], dtype=torch.float64)  # (1, 3, 1000)
    norm = to_normalised(maps)
    # closed form: ln(T1 / 1000 ms), ln(T2 / 100 ms), PD
    assert_allclose(norm[0, 0].numpy(), np.log(t1 / 1000.0), rtol=0, atol=1e-12)
    assert_allclose(norm[0, 1].numpy(), np.log(t2 / 100.0), rtol=0, atol=1e-12)
    assert_allclose(norm[0, 2].numpy(), pd, rtol=0, atol=0)
    # float64 exp(log(x)) is exact to a few ulp
    assert_allclose(from_normalised(norm).numpy(), maps.numpy(), rtol=1e-13, atol=0)
    zeros = to_normalised(torch.zeros(1, 3, 4))
    assert_allclose(zeros[0, 0].numpy(), math.log(MAP_FLOOR_MS / 1000.0), rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        to_normalised(torch.zeros(2, 2, 4))


def test_bounded_is_identity_inside_and_clamps_outside() -> None:
    x = torch.linspace(-100.0, 100.0, 20001, dtype=torch.float64, requires_grad=True)
    y = bounded(x, -2.0, 3.0, 4.0)
    assert float(y.detach().min()) >= -2.0 and float(y.detach().max()) <= 3.0
    inside = (x > -0.5) & (x < 1.5)  # >= 1.5 from both bounds: |y - x| < exp(-6) / 4 = 6.2e-4
    assert_allclose(y[inside].detach().numpy(), x[inside].detach().numpy(), rtol=0, atol=math.exp(-6.0) / 4.0)
    (grad,) = torch.autograd.grad(y.sum(), x)
    near = (x > -5.0) & (x < 6.0)  # up to 3 units beyond each bound: slope >= ~sigmoid(-12) = 6e-6
    assert bool((grad[near] > 0).all())
    assert bool((grad >= 0).all())  # monotone everywhere


def test_dataclass_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().arch = "unet"  # type: ignore[misc]
