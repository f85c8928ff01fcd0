"""Sample generation and the HDF5 store: determinism across workers and shards, kill -9 and resume, errors."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PACK_COLUMNS
from relaxomap.synth.generate import SynthConfig, generate_subject, render_signal
from relaxomap.synth.normalize import normalize_intensity
from relaxomap.synth.phantom import PhantomConfig
from relaxomap.synth.sources import SourceConfig
from relaxomap.synth.store import (
    SCHEMA_VERSION,
    check_store,
    is_view,
    merge_parts,
    parts_dir,
    store_bytes,
    store_fields,
    write_store,
)
from tests.conftest import REPO

SIZE = 64
SLICES = 3
N = 14  # 5 subjects, the last one cut short (2 samples)
PART_SUBJECTS = 1  # one part per subject: many parts to share among workers and shards


def tiny_source(**changes) -> SourceConfig:
    """Procedural phantoms on a coarse 3.5 mm grid (~0.07 s per head instead of ~0.6 s at 1 mm)."""
    return SourceConfig(phantom=PhantomConfig(shape=(64, 72, 8), voxel_mm=(3.5, 3.5, 3.5)), **changes)


def small_config(**changes) -> SynthConfig:
    return SynthConfig(source=tiny_source(), image_size=(SIZE, SIZE), slices_per_subject=SLICES, seed=11,
                       **changes)


def read_all(path: Path) -> dict[str, np.ndarray]:
    with check_store(path) as f:
        return {name: f[name][...] for name in f}


def assert_same_store(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name  # bit-identical: same seeds, same code path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    write_store(small_config(), out, N, workers=1, part_subjects=PART_SUBJECTS)
    return out


@pytest.fixture(scope="module")
def single_file(reference: Path, tmp_path_factory) -> Path:
    """The reference view converted into one self-contained file (a copy: the reference stays a view)."""
    out = tmp_path_factory.mktemp("single") / reference.name
    shutil.copy(reference, out)
    shutil.copytree(parts_dir(reference), parts_dir(out))
    merge_parts(out, self_contained=True)
    return out


# --------------------------------------------------------------------------- generate
@pytest.mark.parametrize("size", [(64, 64), (40, 90)])  # pad both axes; crop one and pad the other
def test_axial_stack_equals_slice_by_slice(size) -> None:
    from relaxomap.synth.generate import _axial_stack, fit_to_size
    from relaxomap.synth.orientation import axial_image
    from relaxomap.synth.maps import Maps

    rng = np.random.default_rng(0)
    shape = (50, 70, 9)
    t1, t2, pd = (rng.uniform(1, 5000, shape).astype(np.float32) for _ in range(3))
    maps = Maps(t1, t2, pd, rng.integers(0, 14, shape).astype(np.uint8), rng.uniform(size=shape) > 0.5,
                voxel_mm=np.ones(3, np.float32), field_t=3.0, source="phantom")
    zs = np.array([4, 0, 8, 4])  # any order, repeats allowed
    targets, labels, mask = _axial_stack(maps, zs, size)
    for n, z in enumerate(zs):
        for c, vol in enumerate((t1, t2, pd)):
            assert np.array_equal(targets[n, c], fit_to_size(axial_image(vol, z), size))
        assert np.array_equal(labels[n], fit_to_size(axial_image(maps.labels, z), size))
        assert np.array_equal(mask[n], fit_to_size(axial_image(maps.mask, z), size))


def test_generate_subject_fields_and_units() -> None:
    cfg = small_config()
    samples = generate_subject(cfg, 0)
    assert len(samples) == SLICES
    fields = store_fields(SIZE, SIZE)
    for s in samples:
        for name, (dtype, shape) in fields.items():
            if dtype is str:
                assert isinstance(s[name], str) and s[name]
            elif shape:
                assert s[name].shape == shape and s[name].dtype == np.dtype(dtype), name
        # every present contrast is normalised: its own normalisation scale is now 1 (float32 rounding)
        for c in np.flatnonzero(s["present"]):
            assert_allclose(normalize_intensity(s["inputs"][c])[1], 1.0, rtol=1e-5)
        assert_allclose(s["params"], s["protocols"][:, 1:4], rtol=1e-6)  # TR, TE, TI columns (float32 copy)
        assert PACK_COLUMNS[1:4] == ("tr_ms", "te_ms", "ti_ms")
        t1, t2, pd = s["targets"]
        assert np.all((t1 >= 0) & (t2 >= 0) & (pd >= 0))
        brain = s["mask"]
        assert brain.any()
        # physical units: brain T1 at 1.5-3 T lies between ~500 ms (WM, 1.5 T) and ~5000 ms (CSF)
        assert 300 < np.median(t1[brain]) < 5000 and 30 < np.median(t2[brain]) < 2500
        assert s["field_t"] == 3.0 and s["subject_id"].startswith("phantom-")
        assert np.all(t1[pd == 0] == 0)


def test_generate_is_deterministic_and_prefix_stable() -> None:
    cfg = small_config()
    a = generate_subject(cfg, 2)
    b = generate_subject(cfg, 2, n_samples=2)
    c = generate_subject(cfg.replace(seed=12), 2)
    for x, y in zip(a, b):
        for k in x:
            assert np.array_equal(x[k], y[k]), k
    assert not np.array_equal(a[0]["inputs"], c[0]["inputs"])
    assert len({s["seed"] for s in a}) == SLICES


def test_render_signal_matches_physics() -> None:
    from relaxomap.physics.epg import epg_signal
    from relaxomap.physics.protocol import PRESETS
    from relaxomap.physics.signal import signal

    rng = np.random.default_rng(0)
    pd = np.where(rng.random((16, 16)) < 0.3, 0.0, rng.uniform(0.5, 1.0, (16, 16))).astype(np.float32)
    t1 = np.where(pd > 0, rng.uniform(600, 4000, pd.shape), 0).astype(np.float32)
    t2 = np.where(pd > 0, rng.uniform(50, 2000, pd.shape), 0).astype(np.float32)
    prots = (PRESETS["t1w_tse_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"])
    # The background is skipped; elsewhere the same kernel on the same values. A voxel's SIMD lane depends on
    # its position in the array, so results may differ by a few float32 ulp (signals <= 1: atol 1e-6).
    tol = dict(rtol=1e-6, atol=1e-6)
    closed = render_signal(t1, t2, pd, prots, "closed")
    assert_allclose(closed, np.where(pd > 0, signal(t1, t2, pd, list(prots)), 0), **tol)
    assert np.all(closed[:, pd == 0] == 0)
    epg = render_signal(t1, t2, pd, prots, "epg")
    assert_allclose(epg, np.where(pd > 0, epg_signal(t1, t2, pd, list(prots)), 0), **tol)
    assert np.abs(epg - closed).max() > 1e-3  # 150° refocusing: EPG's stimulated echoes change the images
    spgr = (PRESETS["spgr_t1w_3t"],)
    assert_allclose(render_signal(t1, t2, pd, spgr, "epg"), np.where(pd > 0, signal(t1, t2, pd, list(spgr)), 0),
                    **tol)


def test_missing_contrasts() -> None:
    cfg = small_config(missing_probability=(0.5, 0.5, 0.5))
    samples = [s for i in range(3) for s in generate_subject(cfg, i)]
    present = np.array([s["present"] for s in samples])
    assert present.sum(1).min() >= 1  # at least one contrast is always kept
    assert (present == 0).any()
    for s in samples:
        for c in np.flatnonzero(s["present"] == 0):
            assert not s["inputs"][c].any() and s["scale"][c] == 0


@pytest.mark.parametrize("kw, field", [({"image_size": (8, 8)}, "image_size"), ({"forward": "bloch"}, "forward"),
                                       ({"slices_per_subject": 0}, "slices_per_subject"),
                                       ({"missing_probability": (0.5, 2.0, 0.0)}, "missing_probability"),
                                       ({"seed": -1}, "seed"), ({"min_brain_fraction": 1.5}, "min_brain_fraction")])
def test_config_errors_name_the_field(kw, field) -> None:
    with pytest.raises(ValueError, match=field):
        SynthConfig(**kw)


def test_config_json_round_trip() -> None:
    cfg = small_config(forward="epg")
    assert SynthConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        SynthConfig.from_dict({"n_samples": 3})


# --------------------------------------------------------------------------- store
def test_store_schema_and_attrs(reference: Path) -> None:
    import json

    with check_store(reference) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert int(f.attrs["n_samples"]) == N
        assert SynthConfig.from_json(f.attrs["config"]) == small_config()
        assert json.loads(f.attrs["contrasts"]) == ["t1w", "t2w", "flair"]
        assert "T1 [ms]" in json.loads(f.attrs["units"])["targets"]
        assert f.attrs["package_version"] and f.attrs["created"]
    with h5py.File(parts_dir(reference) / "part-000000.h5", "r") as f:
        assert f["inputs"].chunks == (1, 3, SIZE, SIZE)
    data = read_all(reference)
    # samples ordered by subject: SLICES per subject, the last subject cut short
    expected = np.repeat(np.arange(5), SLICES)[:N]
    assert np.array_equal(data["subject_index"], expected)
    assert len(set(data["seed"].tolist())) == N  # no duplicate sample
    first = generate_subject(small_config(), 4)
    assert np.array_equal(data["inputs"][12], first[0]["inputs"])
    with h5py.File(reference, "r") as f:  # a view: image datasets are virtual over the parts, which stay
        assert f["inputs"].is_virtual and not f["seed"].is_virtual and f.attrs["layout"] == "view"
    assert is_view(reference) and len(list(parts_dir(reference).glob("part-*.h5"))) == 5


def test_two_workers_give_identical_arrays(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "w2.h5"
    report = write_store(small_config(), out, N, workers=2, part_subjects=PART_SUBJECTS)
    assert report.merged and report.generated == N
    assert_same_store(read_all(out), read_all(reference))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers on Linux only")
def test_forked_workers_give_identical_arrays(reference: Path, tmp_path: Path) -> None:
    """A process without torch or a Numba thread pool forks its workers (the pytest process spawns them)."""
    out = tmp_path / "forked.h5"
    code = ("import sys; from relaxomap.synth.store import _start_method, write_store; from tests.synth.test_store import "
            f"small_config; print(_start_method()); write_store(small_config(), sys.argv[1], {N}, workers=2, "
            f"part_subjects={PART_SUBJECTS})")
    run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[0] == "fork"
    assert_same_store(read_all(out), read_all(reference))


def test_shards_merged_give_identical_arrays(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded.h5"
    r0 = write_store(small_config(), out, N, shard=(0, 2), part_subjects=PART_SUBJECTS)
    assert not r0.merged and not out.exists()
    with pytest.raises(ValueError, match="parts missing"):
        merge_parts(out)
    write_store(small_config(), out, N, shard=(1, 2), part_subjects=PART_SUBJECTS)
    merge_parts(out)
    assert_same_store(read_all(out), read_all(reference))
    assert parts_dir(out).is_dir()


def test_self_contained_merge_and_moved_view(reference: Path, single_file: Path, tmp_path: Path) -> None:
    """A view converted into one file reads the same and drops the parts; a view moved with its parts reads the
    same from anywhere; a view without its parts is refused with the folder named."""
    assert not is_view(single_file) and not parts_dir(single_file).exists()
    with h5py.File(single_file, "r") as f:
        assert f.attrs["layout"] == "self-contained" and f["inputs"].chunks == (1, 3, SIZE, SIZE)
    assert_same_store(read_all(single_file), read_all(reference))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(reference, moved / reference.name)
    shutil.copytree(parts_dir(reference), parts_dir(moved / reference.name))
    assert_same_store(read_all(moved / reference.name), read_all(reference))
    assert store_bytes(moved / reference.name) > (moved / reference.name).stat().st_size  # parts counted
    parts_dir(moved / reference.name).rename(moved / "renamed.parts")
    with pytest.raises(ValueError, match=r"ref\.h5\.parts.*5 part file\(s\) are missing"):
        check_store(moved / reference.name)


def test_resume_after_partial_run(reference: Path, tmp_path: Path) -> None:
    """State left by a kill at various moments: a half-written part, a missing part, a half-written merge."""
    out = tmp_path / "resume.h5"
    write_store(small_config(), out, N, shard=(0, 1), part_subjects=PART_SUBJECTS)  # all parts, no merge
    folder = parts_dir(out)
    (folder / "part-000002.h5").unlink()
    (folder / "part-000002.h5.tmp").write_bytes(b"\x89HDF half written")
    (folder / "part-000003.h5").rename(folder / "part-000003.h5.tmp")  # killed just before the rename
    out.with_name(out.name + ".tmp").write_bytes(b"half merged")
    report = write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert report.generated == 2 * SLICES  # only the two lost parts were generated again
    assert_same_store(read_all(out), read_all(reference))


def test_finisher_renames_flushed_parts_and_reports_failures(tmp_path: Path) -> None:
    """Parts are written as ``.tmp`` and renamed by a background thread after the flush; a part that cannot be
    finished (here: its file is gone) raises from ``close``, so a run never reports a part it does not have."""
    from relaxomap.synth.store import _Finisher

    payload = os.urandom(1 << 16)
    (tmp_path / "part-000000.h5.tmp").write_bytes(payload)
    finisher = _Finisher()
    finisher.submit(tmp_path / "part-000000.h5")
    finisher.close()
    assert (tmp_path / "part-000000.h5").read_bytes() == payload
    assert not (tmp_path / "part-000000.h5.tmp").exists()
    finisher = _Finisher()
    finisher.submit(tmp_path / "part-000001.h5")  # never written
    with pytest.raises(FileNotFoundError, match="part-000001"):
        finisher.close()


def test_kill_minus_9_and_resume(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    config = tmp_path / "config.json"
    config.write_text(small_config().to_json())
    cmd = [sys.executable, "-m", "relaxomap.train.cli", "synth", "--out", str(out), "--n", str(N), "--config", str(config),
           "--part-subjects", str(PART_SUBJECTS)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folder = parts_dir(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and any(folder.glob("part-*.h5")):  # at least one part done: kill mid-run
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    n_parts = -(-N // SLICES) // PART_SUBJECTS
    assert 1 <= len(list(folder.glob("part-*.h5"))) < n_parts  # killed mid-run: the resume has work to do
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    assert_same_store(read_all(out), read_all(reference))


def test_existing_store_and_parts_with_other_settings(single_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.h5"
    shutil.copy(single_file, out)
    assert write_store(small_config(), out, N, part_subjects=PART_SUBJECTS).generated == 0  # already complete
    with pytest.raises(ValueError, match="already exists with other settings"):
        write_store(small_config(), out, N + 1, part_subjects=PART_SUBJECTS)
    other = tmp_path / "other.h5"
    write_store(small_config(), other, N, shard=(0, 4), part_subjects=PART_SUBJECTS)
    with pytest.raises(ValueError, match="seed"):  # names the differing field
        write_store(small_config().replace(seed=5), other, N, shard=(1, 4), part_subjects=PART_SUBJECTS)


def test_map_errors_name_file_and_field(tmp_path: Path, shared_data: Path) -> None:
    d = dict(np.load(shared_data / "brainweb_colin27" / "colin27_3T.npz"))
    d["t1_ms"][90, 100, 90] = np.nan
    bad = tmp_path / "bad_maps.npz"
    np.savez(bad, **d)
    cfg = small_config().replace(source=SourceConfig(kind="real", paths=(str(bad),)))
    with pytest.raises(ValueError, match="bad_maps.npz.*t1_ms|t1_ms.*bad_maps.npz"):
        generate_subject(cfg, 0)


def test_store_errors_name_the_file(single_file: Path, tmp_path: Path) -> None:
    reference = single_file
    with pytest.raises(ValueError, match="not found"):
        check_store(tmp_path / "nothing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(reference.read_bytes()[:4096])
    with pytest.raises(ValueError, match="corrupt.h5.*not a readable HDF5"):
        check_store(corrupt)
    for attr, value, message in (("schema_version", SCHEMA_VERSION + 1, "schema_version 2"),
                                 ("complete", False, "incomplete")):
        bad = tmp_path / f"bad_{attr}.h5"
        shutil.copy(reference, bad)
        with h5py.File(bad, "a") as f:
            f.attrs[attr] = value
        with pytest.raises(ValueError, match=message):
            check_store(bad)
    missing = tmp_path / "missing.h5"
    shutil.copy(reference, missing)
    with h5py.File(missing, "a") as f:
        del f["labels"]
    with pytest.raises(ValueError, match="lacks dataset 'labels'"):
        check_store(missing)
    with pytest.raises(ValueError, match="no parts to merge"):
        merge_parts(tmp_path / "never.h5")
    with pytest.raises(ValueError, match="corrupt.h5.*not a readable HDF5"):
        merge_parts(corrupt)
    with pytest.raises(ValueError, match="n_samples"):
        write_store(small_config(), tmp_path / "x.h5", 0)


def test_image_reader_reads_views_from_their_parts(reference: Path, single_file: Path) -> None:
    """Sample i read through the view's part files (at most 2 open at a time) equals the self-contained file."""
    from relaxomap.synth.store import ImageReader

    view, single = ImageReader(reference, max_open=2), ImageReader(single_file)
    try:
        for i in [0, 13, 3, 7, 1, 12, 5]:  # jumps between parts: files are opened and closed again
            got, j = view.locate(i)
            want, k = single.locate(i)
            assert k == i and j < SLICES  # a view's local index lies inside one subject's part
            for name in ("inputs", "targets", "mask", "labels"):
                assert np.array_equal(got[name][j], want[name][k]), (i, name)
            assert len(view._open) <= 2
        with pytest.raises(IndexError, match="none of its 5 parts"):
            view.locate(N)
    finally:
        view.close()
        single.close()
