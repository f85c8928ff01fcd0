"""relaxomap render: protocol from options, intensities of uniform maps, affine and BIDS sidecar (seconds)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.epg import epg_signal
from relaxomap.physics.protocol import PRESETS, Protocol
from relaxomap.physics.signal import signal
from relaxomap.train.clinical.render import build_protocol, run_render
from tests.train.clinical.helpers import MAPS_SHAPE, WM, write_maps

@pytest.fixture()
def maps_dir(tmp_path: Path) -> tuple[Path, np.ndarray]:
    aff = np.array([[0.0, -1.2, 0.0, 40.0], [1.1, 0.0, 0.0, -30.0], [0.0, 0.0, 2.0, 5.0], [0, 0, 0, 1]])
    return write_maps(tmp_path / "maps", *WM, aff), aff


def test_uniform_se_matches_closed_form(maps_dir: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    d, aff = maps_dir
    prot = build_protocol("se", tr_ms=600.0, te_ms=10.0)
    out = tmp_path / "se.nii.gz"
    side = run_render(d, prot, out)
    img = nib.load(out)
    assert img.shape == MAPS_SHAPE
    assert_allclose(img.affine, aff, atol=1e-6)  # float32 header
    got = img.get_fdata()
    t1, t2, pd = WM
    tr, te = 600.0, 10.0
    # ideal 90-180 spin echo: PD (1 - 2 e^(-(TR - TE/2)/T1) + e^(-TR/T1)) e^(-TE/T2)
    expected = pd * (1 - 2 * math.exp(-(tr - te / 2) / t1) + math.exp(-tr / t1)) * math.exp(-te / t2)
    assert_allclose(got, expected, rtol=1e-5)  # float32 kernel vs float64 formula
    direct = signal(np.float32([t1]), np.float32([t2]), np.float32([pd]), [prot])[0, 0]
    assert_allclose(got, direct, rtol=1e-7)  # the stored value is the signal() value itself
    sc = json.loads((tmp_path / "se.json").read_text())
    assert sc == json.loads(json.dumps(side))
    assert sc["RepetitionTime"] == pytest.approx(0.6, rel=1e-12) and sc["EchoTime"] == pytest.approx(0.01, rel=1e-12)
    assert "InversionTime" not in sc and sc["RelaxomapSignalModel"] == "closed"


def test_flair_alias_epg_matches_epg_signal(maps_dir: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    d, _ = maps_dir
    prot = build_protocol("flair", ti_ms=2400.0)
    assert prot.kind == "ir_tse" and prot.ti_ms == 2400.0 and prot.etl == PRESETS["flair_3t"].etl
    out = tmp_path / "flair.nii.gz"
    side = run_render(d, prot, out, forward="epg")
    expected = epg_signal(np.float32([WM[0]]), np.float32([WM[1]]), np.float32([WM[2]]), [prot])[0, 0]
    assert_allclose(nib.load(out).get_fdata(), expected, rtol=1e-7)  # same kernel, same float32 inputs
    closed = signal(np.float32([WM[0]]), np.float32([WM[1]]), np.float32([WM[2]]), [prot])[0, 0]
    assert abs(expected - closed) > 1e-4 * closed  # 150 deg refocusing: EPG differs from the closed form
    assert side["InversionTime"] == pytest.approx(2.4, rel=1e-12) and side["RelaxomapSignalModel"] == "epg"


def test_build_protocol_options() -> None:
    with pytest.raises(ValueError, match=r"--seq ir_tse needs --te VALUE --ti VALUE --etl VALUE --esp VALUE"):
        build_protocol("ir_tse", tr_ms=9000.0)
    with pytest.raises(ValueError, match=r"--seq ir_tse needs --ti VALUE --etl VALUE \("):  # ESP follows from TE
        build_protocol("ir_tse", tr_ms=9000.0, te_ms=120.0)
    with pytest.raises(ValueError, match=r"--preset t2w_tse_3t is a 'tse' protocol but --seq is 'spgr'"):
        build_protocol("spgr", preset_name="t2w_tse_3t")
    with pytest.raises(ValueError, match=r"invalid protocol for --seq tse: Protocol.te_ms .*--esp sets esp_ms"):
        build_protocol("tse", tr_ms=4000.0, te_ms=95.0, etl=16, esp_ms=10.0)
    p = build_protocol("tse", preset_name="t2w_tse_3t", te_ms=80.0)
    assert p == PRESETS["t2w_tse_3t"].with_(te_ms=80.0, name=p.name)
    assert build_protocol("spgr", tr_ms=20.0, te_ms=4.0, flip_deg=25.0) == Protocol(
        "spgr", tr_ms=20.0, te_ms=4.0, flip_deg=25.0, name="render_spgr")


def test_te_without_esp_derives_the_echo_spacing(maps_dir: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """The README's `render --seq flair --tr 9000 --te 120 --ti 2500`: 120 ms is no multiple of the preset's
    12.5 ms spacing, so the spacing nearest it of which TE is a multiple (12 ms) is chosen and reported."""
    d, _ = maps_dir
    derived: dict[str, str] = {}
    prot = build_protocol("flair", tr_ms=9000.0, te_ms=120.0, ti_ms=2500.0, derived=derived)
    assert (prot.esp_ms, prot.echo_index, prot.etl) == (12.0, 10, PRESETS["flair_3t"].etl)
    assert derived == {"esp_ms": "12 ms: TE 120 ms = 10 x ESP (--esp not given; the spacing nearest 12.5 ms of "
                                 "which TE is a whole multiple)"}
    side = run_render(d, prot, tmp_path / "flair.nii.gz", derived=derived)
    assert side["RelaxomapDerived"] == derived and side["RelaxomapProtocol"]["esp_ms"] == 12.0
    # a preset spacing that TE is a multiple of is kept; a train too short to reach TE is lengthened
    assert build_protocol("t2w", te_ms=80.0, derived=(kept := {})).esp_ms == 10.0 and kept == {}
    long_te = build_protocol("t2w", te_ms=300.0, derived=(grown := {}))
    assert (long_te.esp_ms, long_te.etl) == (10.0, 30) and "do not reach TE" in grown["etl"]
    # an explicit --esp is never replaced: an inconsistent one is still refused
    with pytest.raises(ValueError, match=r"Protocol.te_ms must be k·esp_ms"):
        build_protocol("flair", te_ms=120.0, esp_ms=12.5)
