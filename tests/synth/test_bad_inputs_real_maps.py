"""Bad input class: real map files (``relaxomap synth --source real --real FILE``) that cannot be right.

T1 / T2 written in seconds, a truncated ``.npz`` and float64 values beyond float32 are refused by
``synth.real.load_maps`` with the file and the value named (no BadZipFile traceback, no RuntimeWarning), and
``relaxomap synth`` refuses them before it creates anything (``synth.sources.check_source``): exit status 1,
one ``Error:`` line, no store and no parts folder."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from relaxomap.synth.real import load_maps
from relaxomap.synth.store.format import parts_dir
from relaxomap.train.cli import main

# T1 [ms], T2 [ms], PD of background, CSF, GM, WM at 3 T (the table of ../shared/data)
_TABLE = np.array([[0, 0, 0], [4160, 1650, 1.0], [1450, 95, 0.8], [850, 75, 0.7]])


def _head(shape: tuple[int, int, int] = (24, 28, 6)) -> dict[str, np.ndarray]:
    """Nested ellipsoids: WM inside GM around a CSF core, background outside."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + 0.3 * z ** 2)
    labels = np.select([r < 0.15, r < 0.55, r < 0.85], [1, 3, 2], 0).astype(np.uint8)
    vals = _TABLE[labels]
    return {"t1_ms": vals[..., 0].astype(np.float32), "t2_ms": vals[..., 1].astype(np.float32),
            "pd": vals[..., 2].astype(np.float32), "labels": labels, "mask": labels > 0}


def _synth(tmp_path: Path, real: Path) -> Result:
    res = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "s.h5"), "--n", "2", "--size", "32",
                                    "--slices", "2", "--real", str(real)])
    return res


def _assert_refused_before_work(res: Result, tmp_path: Path) -> None:
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)  # a ClickException: one Error line, no traceback
    assert not (tmp_path / "s.h5").exists() and not parts_dir(tmp_path / "s.h5").exists()


@pytest.mark.parametrize("keys", [("t1_ms", "t2_ms"), ("t1_ms",)])
def test_times_in_seconds_are_refused(tmp_path: Path, keys: tuple[str, ...]) -> None:
    data = _head()
    for key in keys:
        data[key] = data[key] / 1000.0  # written in seconds
    np.savez(tmp_path / "sec.npz", **data)
    with pytest.raises(ValueError, match=r"sec\.npz: key 't1_ms': T1 median 1\.45 in the brain mask looks like "
                                         r"seconds; relaxomap wants ms"):
        load_maps(tmp_path / "sec.npz")
    res = _synth(tmp_path, tmp_path / "sec.npz")
    _assert_refused_before_work(res, tmp_path)
    assert "sec.npz" in res.output and "T1 median 1.45" in res.output and "wants ms" in res.output


def test_t2_alone_in_seconds_is_refused_and_ms_maps_pass(tmp_path: Path) -> None:
    data = _head()
    np.savez(tmp_path / "ok.npz", **data)
    assert load_maps(tmp_path / "ok.npz").t1_ms.max() == pytest.approx(4160.0)  # plausible ms maps load
    data["t2_ms"] = data["t2_ms"] / 1000.0
    del data["mask"]  # the median is then taken where pd > 0
    np.savez(tmp_path / "t2sec.npz", **data)
    with pytest.raises(ValueError, match=r"t2sec\.npz: key 't2_ms': T2 median 0\.095 where pd > 0 looks like "
                                         "seconds"):
        load_maps(tmp_path / "t2sec.npz")


def test_truncated_npz_is_named(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "full.npz", **_head())
    raw = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no leaked file handle (ResourceWarning) either
        with pytest.raises(ValueError, match=r"cut\.npz: cannot read as \.npz: the file is truncated or corrupt"):
            load_maps(tmp_path / "cut.npz")
    res = _synth(tmp_path, tmp_path / "cut.npz")
    _assert_refused_before_work(res, tmp_path)
    assert "cut.npz" in res.output and "truncated or corrupt" in res.output


def test_float64_beyond_float32_is_named_as_such(tmp_path: Path) -> None:
    data = _head()
    data["t1_ms"] = data["t1_ms"].astype(np.float64)
    data["t1_ms"][3, 4, 1] = 1e300
    np.savez(tmp_path / "big.npz", **data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflowing cast would warn
        with pytest.raises(ValueError) as err:
            load_maps(tmp_path / "big.npz")
    text = str(err.value)
    assert "big.npz: key 't1_ms' holds 1 value(s) above the float32 range" in text
    assert "1e+300" in text and "3.403e+38" in text and "non-finite" not in text
    res = _synth(tmp_path, tmp_path / "big.npz")
    _assert_refused_before_work(res, tmp_path)
    assert "above the float32 range" in res.output


def test_really_non_finite_values_are_still_named(tmp_path: Path) -> None:
    data = _head()
    data["t1_ms"] = data["t1_ms"].astype(np.float64)
    data["t1_ms"][0, 0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", **data)
    with pytest.raises(ValueError, match=r"inf\.npz: t1_ms holds 1 non-finite value\(s\)"):
        load_maps(tmp_path / "inf.npz")
