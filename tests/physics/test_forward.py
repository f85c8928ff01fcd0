"""physics.forward.render: the one owner of the closed-form / EPG choice, and the one spin-echo kind list."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.physics.epg import epg_signal
from relaxomap.physics.forward import FORWARD_MODELS, check_forward, effective_forward, render
from relaxomap.physics.protocol import PRESETS, SEQUENCE_KINDS, SPIN_ECHO_KINDS, preset
from relaxomap.physics.signal import signal

PHYSICS = Path(__file__).resolve().parents[2] / "physics"
# One protocol of every kind, spin echoes and gradient echoes interleaved (order must be kept).
MIXED = [preset("spgr_t1w_3t"), preset("t2w_tse_3t"), preset("mprage_3t"), preset("flair_3t"), preset("t1w_se_3t")]


def _maps(random_maps: dict, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    n = int(np.prod(shape))
    return tuple(random_maps[k][:n].reshape(shape) for k in ("t1_ms", "t2_ms", "pd"))


@pytest.mark.parametrize("shape", [(600,), (20, 30), (6, 10, 10)])
def test_each_row_is_the_simulator_it_names(shape: tuple[int, ...], random_maps: dict) -> None:
    t1, t2, pd = _maps(random_maps, shape)
    for forward in FORWARD_MODELS:
        out = render(t1, t2, pd, MIXED, forward=forward)
        assert out.shape == (len(MIXED),) + shape and out.dtype == np.float32
        for i, p in enumerate(MIXED):
            # Exactly the value of the simulator alone on this protocol: same kernels, same float32 inputs.
            if effective_forward(p, forward) == "epg":
                expect = epg_signal(t1, t2, pd, [p])[0]
            else:
                expect = signal(t1, t2, pd, [p], model="closed")[0]
            assert_array_equal(out[i], expect)


def test_epg_is_used_where_it_differs_and_agrees_at_180_degrees(random_maps: dict) -> None:
    t1, t2, pd = _maps(random_maps, (500,))
    p150 = preset("t2w_tse_3t")
    assert p150.refocus_deg == 150.0
    closed, epg = render(t1, t2, pd, p150), render(t1, t2, pd, p150, forward="epg")
    # 150° refocusing: stimulated echoes move the echo by percents of PD for brain-range T2 (Hennig 1988)
    assert np.abs(epg - closed).max() > 1e-2
    # 180° refocusing: the closed form is the exact steady state; both float32 kernels are within 1e-5 of
    # float64 (tests/physics/test_signal.py, tests/physics/test_epg.py), hence 2e-5
    p180 = p150.with_(refocus_deg=180.0)
    assert_allclose(render(t1, t2, pd, p180, forward="epg"), render(t1, t2, pd, p180), atol=2e-5)


def test_gradient_echo_kinds_render_the_closed_form_under_epg(random_maps: dict) -> None:
    t1, t2, pd = _maps(random_maps, (300,))
    gre = [preset("spgr_t1w_3t"), preset("mprage_3t")]
    assert_array_equal(render(t1, t2, pd, gre, forward="epg"), signal(t1, t2, pd, gre))
    assert [effective_forward(p, "epg") for p in gre] == ["closed", "closed"]
    kinds = {p.kind: effective_forward(p, "epg") for p in PRESETS.values()}
    assert kinds == {k: ("epg" if k in SPIN_ECHO_KINDS else "closed") for k in SEQUENCE_KINDS}
    assert {effective_forward(p, "closed") for p in PRESETS.values()} == {"closed"}


def test_errors_name_the_argument() -> None:
    a = np.ones(4, np.float32)
    p = preset("flair_3t")
    with pytest.raises(ValueError, match=r"forward must be one of \['closed', 'epg'\]; got 'bloch'"):
        render(a, a, a, p, forward="bloch")
    with pytest.raises(ValueError, match=r"forward must be one of \['closed', 'epg'\]; got None"):
        check_forward(None)
    with pytest.raises(ValueError, match=r"protocols must hold at least one Protocol; got none"):
        render(a, a, a, [], forward="epg")
    with pytest.raises(TypeError, match=r"protocols must hold only Protocol objects; got dict"):
        render(a, a, a, [p.to_dict()])
    with pytest.raises(TypeError, match=r"protocols must be a Protocol or a sequence of Protocols; got str"):
        render(a, a, a, "flair_3t")
    with pytest.raises(TypeError, match=r"protocol must be a physics.protocol.Protocol; got str"):
        effective_forward("flair_3t", "epg")
    bad = np.array([1000.0, np.nan, 900.0, 800.0], np.float32)
    for forward in FORWARD_MODELS:
        with pytest.raises(ValueError, match=r"t1_ms holds 1 non-finite"):
            render(bad, a, a, p, forward=forward)


def test_one_definition_of_the_spin_echo_kinds() -> None:
    # Only physics/protocol.py may spell the spin-echo kind list; every other module imports SPIN_ECHO_KINDS.
    spelled = []
    for path in sorted(PHYSICS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(isinstance(e, ast.Constant) for e in node.elts):
                if {e.value for e in node.elts} == set(SPIN_ECHO_KINDS):
                    spelled.append(f"{path.name}:{node.lineno}")
    assert [s.split(":")[0] for s in spelled] == ["protocol.py"], spelled
    assert SPIN_ECHO_KINDS == ("se", "tse", "ir_tse")
