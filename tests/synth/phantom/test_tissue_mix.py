"""Per-subject tissue values and partial-volume mixing: the mixing kernel against its formula, label ties, the
lowest-bit lookup."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.physics.tissues import label_lookup
from relaxomap.synth.phantom.tissue_mix import draw_tissue_values, mix_fractions


MIX_LABELS = np.array([1, 2, 3, 13, 10, 7, 11, 9, 5, 4, 6, 8, 1], np.int64)  # the phantom's slots: 0 and 12 share 1
MIX_BRAIN = np.arange(13) < 4


def mix_inputs(rng: np.random.Generator, shape: tuple[int, int, int], n_sub: int) -> tuple:
    """Sparse fractions like a head's (air, pure voxels, 2-3 tissue boundaries), per-label values, texture."""
    nx, ny, nz = shape
    frac = np.zeros((13, nx, ny, nz * n_sub), np.float32)
    for idx in np.ndindex(nx, ny, nz * n_sub):
        k = rng.choice([0, 1, 1, 2, 3])  # number of tissues in this sub-voxel (0: air)
        if k:
            w = rng.dirichlet(np.ones(k + 1))[:k] if rng.uniform() < 0.5 else rng.dirichlet(np.ones(k))
            frac[(rng.choice(13, k, replace=False),) + idx] = w
    values = draw_tissue_values(rng, MIX_LABELS, 3.0, (0.08, 0.1, 0.05))
    tex = np.clip(rng.standard_normal((6,) + shape), -3, 3).astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * np.pi, (256, 3))
    tex_w = np.array([0.1, 0.12, 0.06])[None, :, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return frac, MIX_LABELS, MIX_BRAIN, values, tex, tex_w, n_sub


def mix_reference(frac, slot_labels, slot_brain, values_ms, tex, tex_w, n_sub) -> tuple[np.ndarray, ...]:
    """The mix_fractions docstring formula, array-wide in float64."""
    s_n = frac.shape[0]
    f = frac.astype(np.float64).reshape(s_n, *tex.shape[1:], n_sub).sum(-1)  # (S, X, Y, Z) slot fractions
    total = f.sum(0)
    fp = np.where(f > 0, f, 0.0)
    pd, a1, a2 = (np.zeros(tex.shape[1:]) for _ in range(3))
    for s, lab in enumerate(slot_labels):
        t1, t2, p_t = values_ms[lab]
        if p_t <= 0:
            continue
        e = [tex_w[lab, c, 0] * tex[2 * c].astype(np.float64) + tex_w[lab, c, 1] * tex[2 * c + 1] for c in range(3)]
        p = fp[s] * p_t * np.exp(e[2])
        pd += p
        a1 += p * np.exp(-e[0]) / t1
        a2 += p * np.exp(-e[1]) / t2
    first = [int(np.flatnonzero(slot_labels == lab)[0]) for lab in slot_labels]
    groups = sorted(set(first))
    lab_frac = np.stack([fp[[s for s in range(s_n) if first[s] == g]].sum(0) for g in groups])
    win = lab_frac.argmax(0)  # first maximum: ties go to the smallest first slot
    tissue = lab_frac.max(0) > np.maximum(n_sub - total, 0.0)  # a tissue must beat the air fraction
    labels = np.where(tissue & (total > 0), slot_labels[np.array(groups)][win], 0)
    mask = (fp[slot_brain].sum(0) >= 0.5 * n_sub) & (total > 0)
    return pd / n_sub, a1 / n_sub, a2 / n_sub, labels, mask


def test_mix_fractions_matches_the_formula_with_sub_slices() -> None:
    rng = np.random.default_rng(11)
    for n_sub in (1, 2):
        args = mix_inputs(rng, (20, 24, 9), n_sub)  # 4320 voxels: several scan chunks and a partial one
        got = mix_fractions(*args)
        ref = mix_reference(*args)
        assert got[0].dtype == np.float32 and got[3].dtype == np.uint8 and got[4].dtype == np.bool_
        for g, r in zip(got[:3], ref[:3]):
            # float32 texture exponents and expf (a few float32 ulp per factor) and the float32 output
            assert_allclose(g, r, rtol=2e-6, atol=1e-12)
        assert_array_equal(got[3], ref[3])
        assert_array_equal(got[4], ref[4])
        assert (got[3] == 0).mean() > 0.05 and (got[3] == 1).any() and got[4].any()  # air, CSF and brain occur


def test_mix_fractions_label_ties_air_and_shared_labels() -> None:
    rng = np.random.default_rng(12)
    frac, labels, brain, values, tex, tex_w, _ = mix_inputs(rng, (1, 1, 6), 1)
    frac[:] = 0.0
    frac[[2, 5], 0, 0, 0] = 0.5  # tie between two tissues: the smaller slot (WM, label 3) wins
    frac[3, 0, 0, 1] = 0.5  # tissue equal to the air fraction: air
    frac[[5, 12], 0, 0, 2] = 0.5  # slot 12 shares slot 0's label (1): the tie goes to group 0 although slot 0 is 0
    frac[[0, 12, 4], 0, 0, 3] = [0.3, 0.3, 0.4]  # label 1 summed over its two slots (0.6) beats 0.4
    frac[[1, 4], 0, 0, 4] = [0.5, 0.5]  # brain exactly 0.5: in the mask
    got = mix_fractions(frac, labels, brain, values, tex, tex_w, 1)
    assert_array_equal(got[3].ravel(), [3, 0, 1, 1, 2, 0])
    assert_array_equal(got[4].ravel(), [True, True, False, False, True, False])  # voxel 3: brain 0.3
    assert_array_equal(got[0].ravel()[5], 0.0)


def test_mix_fractions_rejects_too_many_slots() -> None:
    frac = np.zeros((65, 2, 2, 2), np.float32)
    tex = np.zeros((6, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="65"):
        mix_fractions(frac, np.ones(65, np.int64), np.ones(65, bool), np.ones((256, 3)), tex, np.zeros((256, 3, 2)))


def test_lowest_set_bit_of_every_uint64() -> None:
    """The de Bruijn lowest-bit lookup of the mixing kernel, for every bit alone and with higher bits set."""
    import numba

    from relaxomap.synth.phantom.tissue_mix import _LOW_BIT_INDEX, _lowest_bit

    @numba.njit
    def lowest(b):
        return _lowest_bit(b, _LOW_BIT_INDEX)

    for k in range(64):
        above = (~((1 << (k + 1)) - 1)) & (2**64 - 1)  # every bit above k
        for b in (1 << k, (1 << k) | above, (1 << k) | (above & 0x5555555555555555)):
            assert lowest(np.uint64(b)) == k


def test_tissue_values_are_jittered_table_means() -> None:
    """Each label's (T1, T2, PD) is the table mean times 1 + sd · z with |z| <= trunc_sd; CSF keeps PD = 1, T2 stays
    <= 0.9 T1, labels not asked for keep the table value."""
    table = label_lookup(3.0)
    sd = np.array([0.08, 0.10, 0.05])
    for seed in range(20):
        values = draw_tissue_values(np.random.default_rng(seed), (1, 2, 3), 3.0, sd, trunc_sd=2.5)
        assert values.shape == (256, 3)
        for lab in (1, 2, 3):
            t1, t2, pd = values[lab]
            assert abs(t1 / table[lab, 0] - 1) <= 2.5 * sd[0] + 1e-12
            assert t2 <= 0.9 * t1 and (abs(t2 / table[lab, 1] - 1) <= 2.5 * sd[1] + 1e-12 or t2 == 0.9 * t1)
            assert abs(pd / table[lab, 2] - 1) <= 2.5 * sd[2] + 1e-12
        assert values[1, 2] == table[1, 2] == 1.0
        assert_array_equal(values[13], table[13])  # deep GM not asked for: the table value
    assert not np.array_equal(draw_tissue_values(np.random.default_rng(0), (3,), 3.0, sd)[3], table[3])
