"""The voxel-wise solver of the NLLS baseline: packed protocol rows, exact voxel fits with known gains, settings."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PRESETS, pack_protocols
from relaxomap.physics.signal import signal_reference
from relaxomap.physics.voxel_solver import NLLSConfig, fit_voxels, protocols_from_packed

PROTOCOLS = [PRESETS["t1w_se_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"]]
GAINS = np.array([2.3, 0.41, 7.9])  # arbitrary per-contrast receiver gains


def test_protocols_from_packed_round_trip() -> None:
    protos = [PRESETS[k] for k in sorted(PRESETS)]
    back = protocols_from_packed(pack_protocols(protos))
    assert_allclose(pack_protocols(back), pack_protocols(protos), rtol=1e-15)  # degrees <-> radians round-off
    assert [p.kind for p in back] == [p.kind for p in protos]


def test_fit_voxels_with_known_gains_on_continuous_maps() -> None:
    """Known gains: the voxel fit alone must return continuous random maps (no anchor involved) to the
    stopping tolerance. T1 in [300, 2500] ms stays well below the FLAIR CSF null (~3.6 s for flair_3t), where
    |Mz(TI)| has a second branch and the problem has two exact solutions."""
    rng = np.random.default_rng(11)
    n = 3000
    t1 = rng.uniform(300.0, 2500.0, n)
    t2 = rng.uniform(30.0, 300.0, n)
    pd = rng.uniform(0.3, 1.2, n)
    y = signal_reference(t1, t2, pd, PROTOCOLS) * GAINS[:, None]
    maps, cost, _ = fit_voxels(y, PROTOCOLS, GAINS)
    assert_allclose(maps, np.stack([t1, t2, pd], 1), rtol=1e-6)
    assert_allclose(cost, 0.0, atol=1e-20)  # residual of an exact solution: float64 round-off squared


@pytest.mark.parametrize("field,value", [("t1_bounds_ms", (0.0, 100.0)), ("grid_t1", 1), ("floor", -1.0)])
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        NLLSConfig(**{field: value})

