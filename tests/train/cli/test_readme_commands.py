"""Every ``relaxomap ...`` command shown in README.md parses against the CLI and runs, at small size, in CI.

Extraction (:func:`readme_commands`): the lines of README.md's fenced code blocks, each cut at ``&&`` and
``;`` with its trailing ``# comment`` removed; the pieces that start with ``relaxomap`` are the commands (lines
that are only a comment are skipped). Removing a command or an option from the CLI, or changing an option's
values, fails :func:`test_readme_command_parses` (every command, its README arguments verbatim, parsed and
validated by click with the commands' bodies replaced by stubs) and :func:`test_readme_command_runs`.

Each command runs in a fresh temporary folder holding the inputs it names, made here: a 4-slice held-out demo
exam (``t1w.nii.gz`` + ``t1w.json`` ..., the same case as DICOM series in ``dicom/T1`` ..., its true maps in
``maps/``), a tiny store as ``train.h5`` / ``test.h5`` and a tiny random checkpoint as ``runs/pe/best.pt``;
every output it names must exist afterwards. Run verbatim: the three ``predict`` commands (with the shipped
model; one with ``--refine``),
``render``, ``bounds``, ``synth merge``, ``synth inspect``, ``export``. With small-size options appended
(:data:`SMALL`; the last value of an option wins):

- ``demo``: ``--checkpoint runs/pe/best.pt`` -- the shipped model on the demo's 20 full slices takes 30-100 s on
  2 shared cores; the shipped model runs in the ``predict`` commands instead.
- ``fidelity``: ``--tissue WM`` -- the Bloch reference of six tissues takes ~13 s.
- ``synth``: ``--n 8 --size 32 --slices 4 --workers 1`` -- 8192 samples take ~30 s per 8192/250.
- ``train``: ``--steps 2 --batch-size 2 --patch 32`` -- 20000 steps take hours.
- ``evaluate``: ``--max-samples 2 --examples 1`` -- the whole test split with the voxel-wise fit takes longer.
- ``bench physics`` / ``bench train``: their smallest sizes and one repetition -- the defaults time seconds to
  minutes of work on purpose.
- ``bench refine``: ``--shape 32 32 4 --no-nlls`` -- the default 256 × 256 × 30 exam takes ~30 s plus the
  NLLS baseline's ~20 s.

Only parsed, then run with ``--help`` (:data:`HELP_ONLY`): ``experiment ablation`` (1.4 h at the default size; its
``--quick`` smoke run is tests/train/experiment/test_ablation.py's), ``experiment scenarios`` and ``experiment
shipped`` (minutes; their ``--quick`` runs are tests/train/experiment/test_scenarios.py's) and ``bench synth`` (it starts worker pools
for several worker counts: ~20 s even at ``--n 4 --size 16``).
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import shlex
from pathlib import Path
from typing import Any, Iterator

import click
import pytest
from click.testing import CliRunner

from relaxomap.train.cli import main

README = Path(__file__).resolve().parents[3] / "README.md"
#: Options appended to run a README command at small size (see the module docstring for why).
SMALL: dict[str, list[str]] = {
    "demo": ["--checkpoint", "runs/pe/best.pt"],
    "fidelity": ["--tissue", "WM"],
    "synth": ["--n", "8", "--size", "32", "--slices", "4", "--workers", "1"],
    "train": ["--steps", "2", "--batch-size", "2", "--patch", "32"],
    "evaluate": ["--max-samples", "2", "--examples", "1"],
    "bench physics": ["--voxels", "1000", "--epg-voxels", "100", "--repeats", "1"],
    "bench train": ["--batch-size", "1", "--patch", "32", "--slice-size", "32", "--repeats", "1", "--warmup", "0"],
    "bench refine": ["--shape", "32", "32", "4", "--no-nlls"],
}
#: README commands only parsed and run with --help, and why.
HELP_ONLY: dict[str, str] = {
    "experiment ablation": "1.4 h at the default size; --quick is run by tests/train/experiment/test_ablation.py",
    "bench synth": "starts worker pools for several worker counts (~20 s at any size)",
    "experiment scenarios": "10 stores of 64 slices (~2 min); --quick is run by tests/train/experiment/test_scenarios.py",
    "experiment shipped": "~15 min at the default size; --quick is run by tests/train/experiment/test_scenarios.py",
}
#: README commands run exactly as written.
VERBATIM = ("predict", "render", "bounds", "synth merge", "synth inspect", "export")
#: Options whose value is an output the command writes.
_OUTPUT_OPTIONS = ("--out", "--json", "--png")


def readme_commands(text: str | None = None) -> list[list[str]]:
    """The ``relaxomap`` commands of README.md's code blocks, as argument lists (without ``relaxomap``)."""
    text = README.read_text() if text is None else text
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            for piece in re.split(r"&&|;", line):
                piece = re.split(r"\s#", piece)[0].strip()
                words = shlex.split(piece)
                if words and words[0] == "relaxomap":
                    out.append(words[1:])
    return out


def command_path(args: list[str]) -> str:
    """``"synth merge"`` for ``["synth", "merge", "train.h5", ...]``: the (sub)command names the args select."""
    names, cmd = [], main
    for word in args:
        if not isinstance(cmd, click.Group) or word not in cmd.commands:
            break
        names.append(word)
        cmd = cmd.commands[word]
    return " ".join(names)


COMMANDS = readme_commands()
IDS = [" ".join(a) for a in COMMANDS]


def test_readme_shows_the_commands_and_each_has_a_recipe() -> None:
    paths = [command_path(a) for a in COMMANDS]
    assert len(COMMANDS) >= 16, IDS
    for expected in ("demo", "predict", "render", "fidelity", "bounds", "synth", "synth merge", "synth inspect",
                     "train", "evaluate", "export", "experiment ablation", "bench physics", "bench synth",
                     "bench train", "bench refine"):
        assert expected in paths, f"README.md no longer shows `relaxomap {expected}`"
    for p, ident in zip(paths, IDS):
        assert p in SMALL or p in HELP_ONLY or p in VERBATIM, (
            f"`relaxomap {ident}`: add its command to SMALL, HELP_ONLY or VERBATIM in this test")
    assert readme_commands("```bash\nx && relaxomap a --b 1 # note\n# relaxomap c\nrelaxomap d ; relaxomap e\n```") \
        == [["a", "--b", "1"], ["d"], ["e"]]


# ------------------------------------------------------------------------------------------------ inputs
def _write_exam(root: Path) -> dict[str, list[Path]]:
    """A 4-slice held-out demo exam: NIfTI + sidecars, DICOM series (FLAIR without TI), its true maps."""
    from relaxomap.train.clinical.demo import make_case
    from relaxomap.train.clinical.map_files import MAP_FILES
    from relaxomap.train.clinical.nifti import save_nifti, write_json
    from relaxomap.train.clinical.sidecar import bids_sidecar_dict

    case = make_case(0, n_slices=4)
    files: dict[str, list[Path]] = {}
    dicom = {"t1w": "T1", "t2w": "T2", "flair": "FLAIR"}
    for c, image in case["images"].items():
        prot = case["protocols"][c]
        save_nifti(root / f"{c}.nii.gz", image, case["affine"])
        write_json(root / f"{c}.json", bids_sidecar_dict(prot))
        files[f"{c}.nii.gz"] = [root / f"{c}.nii.gz", root / f"{c}.json"]
        files[f"{c}.json"] = [root / f"{c}.json"]
        if _has_pydicom():
            from tests.train.clinical.test_dicom import write_series

            series = root / "dicom" / dicom[c]
            write_series(series, image, spacing=(1.0, 1.0), slice_gap=1.0, tr=prot.tr_ms, te=prot.te_ms,
                         ti=prot.ti_ms if c == "t1w" and prot.ti_ms else None)
            files[f"dicom/{dicom[c]}"] = [series]
    maps = case["maps"]
    (root / "maps").mkdir()
    for key, name in MAP_FILES.items():
        save_nifti(root / "maps" / name, getattr(maps, key) * maps.mask, case["affine"])
    files["maps/"] = [root / "maps"]
    return files


def _has_pydicom() -> bool:
    return importlib.util.find_spec("pydicom") is not None


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> dict[str, list[Path]]:
    """README input name -> the files that make it (copied into each command's folder, same relative paths)."""
    from relaxomap.synth.generate import SynthConfig
    from relaxomap.synth.phantom.config import PhantomConfig
    from relaxomap.synth.sources import SourceConfig
    from relaxomap.synth.store.writer import write_store

    root = tmp_path_factory.mktemp("readme-inputs")
    files = _write_exam(root)
    # 12 small phantom subjects x 4 slices: a subject-wise split with train, val and test samples
    config = SynthConfig(image_size=(48, 48), slices_per_subject=4, seed=0,
                         source=SourceConfig(phantom=PhantomConfig(shape=(64, 64, 16))))
    for name in ("train.h5", "test.h5"):
        write_store(config, root / name, 48)
        files[name] = [p for p in (root / name, root / f"{name}.parts") if p.exists()]
    (root / "runs" / "pe").mkdir(parents=True)
    shutil.copy(tiny_ckpt, root / "runs" / "pe" / "best.pt")
    files["runs/pe/best.pt"] = [root / "runs" / "pe" / "best.pt"]
    return {k: [p.relative_to(root) for p in v] for k, v in files.items()} | {"": [root]}


def _prepare(folder: Path, args: list[str], sources: dict[str, list[Path]]) -> None:
    """Copy into ``folder`` every input the arguments name (values of output options are outputs, skipped)."""
    root = sources[""][0]
    previous = None
    for word in args:
        if previous not in _OUTPUT_OPTIONS and word in sources:
            for rel in sources[word]:
                src, dst = root / rel, folder / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
        previous = word


def _outputs(args: list[str]) -> list[str]:
    return [v for k, v in zip(args, args[1:]) if k in _OUTPUT_OPTIONS]


@pytest.fixture()
def in_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


# ------------------------------------------------------------------------------------------------ tests
def _stub_every_command(monkeypatch: pytest.MonkeyPatch, called: list[str]) -> None:
    def walk(cmd: click.Command, name: str) -> None:
        def stub(*args: Any, **kwargs: Any) -> None:
            called.append(name)

        monkeypatch.setattr(cmd, "callback", stub)
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{name} {sub_name}".strip())

    walk(main, "")


@pytest.mark.parametrize("args", COMMANDS, ids=IDS)
def test_readme_command_parses(args: list[str], sources: dict[str, list[Path]], in_folder: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The README arguments, verbatim, are accepted by the CLI (options, values, files) and select the command."""
    _prepare(in_folder, args, sources)
    called: list[str] = []
    _stub_every_command(monkeypatch, called)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, f"`relaxomap {' '.join(args)}` no longer parses:\n{res.output}"
    assert called and called[-1] == command_path(args), called


@pytest.mark.parametrize("args", COMMANDS, ids=IDS)
def test_readme_command_runs(args: list[str], sources: dict[str, list[Path]], in_folder: Path,
                             single_thread: None) -> None:
    path = command_path(args)
    if path in ("predict",) and any(a.startswith("dicom/") for a in args) and not _has_pydicom():
        pytest.skip("pydicom not installed (the dicom extra)")
    run = [*args, "--help"] if path in HELP_ONLY else [*args, *SMALL.get(path, [])]
    _prepare(in_folder, run, sources)
    res = CliRunner().invoke(main, run)
    assert res.exit_code == 0, f"`relaxomap {' '.join(run)}` failed:\n{res.output}\n{res.exception!r}"
    if path in HELP_ONLY:
        assert res.output.startswith("Usage: ")
        return
    for out in _outputs(args):
        assert (in_folder / out).exists(), f"`relaxomap {' '.join(run)}` did not write {out}"
    if path == "predict":
        out_dir = in_folder / args[args.index("--out") + 1]
        prov = json.loads((out_dir / "provenance.json").read_text())
        assert prov["model"]["path"].endswith("default_model/model.pt") and prov["forced"] == []
        assert all(prov["present"].values())
        if "--refine" in args:
            assert "refine" in prov and (out_dir / "refine.json").is_file() and (out_dir / "roi.csv").is_file()
    if path == "render":
        side = json.loads((in_folder / "flair_synth.json").read_text())
        assert side["RelaxomapProtocol"]["esp_ms"] == 12.0 and "esp_ms" in side["RelaxomapDerived"]
    if path == "demo":
        assert (in_folder / "relaxomap_demo" / "metrics.json").is_file()
