"""The ablation experiment (``relaxomap experiment ablation``): from nothing to a results page.

One call synthesises the stores, trains every network variant on the same data with the same budget and
seed, evaluates them and the voxel-wise least-squares fit on every test scenario, and writes a markdown page
plus a JSON file. It only orchestrates library functions: :func:`synth.store.writer.write_store`,
:func:`train.trainer.train` and :func:`train.evaluation.evaluate.run_evaluate`.

Stages and the files that mark them done (under ``out/``; a stage whose output exists is skipped on resume)
-------------------------------------------------------------------------------------------------------------
1. stores: ``stores/<name>.h5`` (train, val and one per scenario); :func:`~synth.store.writer.write_store` resumes
   its own parts after an interruption and returns at once for a finished store with the same settings.
2. training: ``runs/<variant>/summary.json`` (written after :func:`~train.trainer.train` returns); an
   interrupted run continues from its ``last.pt`` with ``train(config, resume=True)``.
3. evaluation: ``eval/<scenario>/results.json`` (written atomically with montages and curves by
   :func:`~train.evaluation.evaluate.run_evaluate`), when it evaluated the present checkpoints (same SHA-256)
   and the two reference predictors (NLLS fit, oracle prior) and has the present results format.
4. report: the results page, its JSON twin and the figures folder beside it, always rebuilt (seconds).

``stage_times.json`` keeps the wall time of each stage from the call that did it, so the page of a resumed run
still gives the time of the whole experiment. ``experiment.json`` holds the :class:`ExperimentConfig` of the
folder; resuming with a different one is refused, listing the fields that differ.

The configuration (variants, scenarios, :class:`~train.experiment.config.ExperimentConfig`) is in
:mod:`train.experiment.config`, the statistics in :mod:`train.experiment.stats`, the JSON report in
:mod:`train.experiment.report` and the page in :mod:`train.experiment.page`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from relaxomap.atomic import atomic_write_text, check_output_dir, check_output_file
from relaxomap.physics.checks import config_differences
from relaxomap.train.checkpoint import sha256_file
from relaxomap.train.evaluation.evaluate import EVALUATION_FORMAT_VERSION
from relaxomap.train.experiment.config import (
    NLLS,
    ORACLE,
    VARIANTS,
    ExperimentConfig,
    Scenario,
    Variant,
    estimate_seconds,
    scenarios,
    training_synth_config,
    variant_train_config,
)
from relaxomap.train.experiment.page import write_report
from relaxomap.train.experiment.stores import write_one_store
from relaxomap.train.experiment.report import build_report

__all__ = ["run_experiment"]


def _check_folder(out: Path, config: ExperimentConfig, resume: bool) -> None:
    """Refuse a non-empty ``out`` without ``resume``, and a resume with another configuration."""
    marker = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    check_output_dir(out, existing_ok=True, what="--out")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ValueError(f"--out {out} is not empty (an earlier experiment?); pass --resume to continue it or "
                         "choose another --out")
    if resume and marker.is_file():
        saved = json.loads(marker.read_text())
        diff = config_differences(saved, config.to_dict())
        if diff:
            raise ValueError(f"cannot resume {out} with a different experiment configuration; fields that differ:"
                             "\n  " + "\n  ".join(diff))


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, results: str | os.PathLike, *,
                   device: str = "auto", resume: bool = False, progress: bool = True,
                   echo: Callable[[str], None] = print, command: str = "") -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the ablation in ``out`` and write the results page ``results``.

    Parameters
    ----------
    config : sizes, budget and seeds.
    out : working folder (stores, runs, evaluations; layout in the module docstring).
    results : the markdown page; ``<stem>.json`` and the folder ``<stem>_figures/`` are written beside it.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ... for training and evaluation.
    resume : continue an interrupted experiment in ``out`` (finished stages are skipped).
    progress : tqdm bars (stages, store generation, training, evaluation).
    echo : where one-line stage messages go.
    command : the command line, shown on the page.

    Returns
    -------
    The JSON-able report (also written to ``<stem>.json``); ``report["stages"]`` says what each stage did.

    Raises
    ------
    ValueError : ``out`` not empty without ``resume``; a resume with another configuration; invalid data.
    FileNotFoundError : the training recipe or the out-of-range scenario file is missing.
    """
    import torch

    out, results = Path(out), Path(results)
    if results.suffix == ".json":
        raise ValueError(f"--results {results} must be the markdown page (e.g. results.md); its JSON twin is "
                         "written beside it")
    _check_folder(out, config, resume)
    check_output_file(results, "--results", overwrite=True)
    threads = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    try:
        return _run_stages(config, out, results, device, progress, echo, command)
    finally:
        torch.set_num_threads(threads)


class _Stages:
    """Runs the pipeline's named stages once each: a stage whose output exists is skipped. The wall time of
    every stage is kept in ``stage_times.json`` across calls, so a resumed run still reports the whole."""

    def __init__(self, out: Path, echo: Callable[[str], None], bar: Any) -> None:
        self.echo, self.bar = echo, bar
        self.times_path = out / "stage_times.json"
        self.times: dict[str, Any] = json.loads(self.times_path.read_text()) if self.times_path.is_file() else {}
        self.stages: dict[str, dict[str, Any]] = {}

    def run(self, name: str, done: bool, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` unless ``done``; record, persist and announce the stage."""
        t0 = time.perf_counter()
        value = None if done else fn()
        stage = self.stages[name] = {"status": "skipped (output exists)" if done else "done",
                                     "seconds": time.perf_counter() - t0}
        if done:
            stage["earlier_seconds"] = (self.times.get(name) or {}).get("seconds")
        else:
            self.times[name] = {"seconds": stage["seconds"],
                                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            atomic_write_text(self.times_path, json.dumps(self.times, indent=1, sort_keys=True) + "\n")
        self.echo(f"{name}: {stage['status']} ({stage['seconds']:.1f} s)")
        self.bar.update(1)
        return value


def _make_stores(config: ExperimentConfig, stores: Mapping[str, tuple[Any, int]], paths: Mapping[str, Path],
                 stages: _Stages, progress: bool) -> None:
    for name, (synth, n) in stores.items():
        stages.run(f"store {name}", paths[name].is_file(),
                   lambda name=name, synth=synth, n=n: write_one_store(config, synth, paths[name], n, name, progress))


def _train_variants(config: ExperimentConfig, out: Path, paths: Mapping[str, Path], stages: _Stages, device: str,
                    progress: bool) -> dict[str, dict[str, Any]]:
    """Train every variant (or continue it from ``last.pt``); returns each run's summary."""
    from relaxomap.train.trainer import train  # looked up at call time (tests replace it)

    summaries: dict[str, dict[str, Any]] = {}
    for v in VARIANTS:
        run = out / "runs" / v.name
        marker = run / "summary.json"

        def fit(v: Variant = v, run: Path = run, marker: Path = marker) -> None:
            tc = variant_train_config(config, v, paths["train"], paths["val"], run, device, progress)
            try:
                summary = train(tc, resume=(run / "last.pt").is_file())
            except FloatingPointError as err:  # a diverged variant is a result, not a reason to stop the others
                summary = {"error": str(err)}
            atomic_write_text(marker, json.dumps(summary, indent=1) + "\n")
        stages.run(f"train {v.name}", marker.is_file(), fit)
        summaries[v.name] = json.loads(marker.read_text())
    return summaries


def _evaluate_scenarios(config: ExperimentConfig, out: Path, paths: Mapping[str, Path], ready: list[Scenario],
                        stages: _Stages, device: str, progress: bool) -> dict[str, dict[str, Any]]:
    """Evaluate each variant's best (else last) checkpoint, the NLLS fit and the segmentation-only baseline
    (oracle prior) on every scenario store."""
    from relaxomap.train.evaluation.evaluate import run_evaluate

    checkpoints = {}
    for v in VARIANTS:
        run = out / "runs" / v.name
        ckpt = next((p for p in (run / "best.pt", run / "last.pt") if p.is_file()), None)
        if ckpt is not None:
            checkpoints[v.name] = str(ckpt)
    models = {**checkpoints, NLLS: NLLS, ORACLE: ORACLE}
    evaluations: dict[str, dict[str, Any]] = {}
    for s in ready:
        ev_dir = out / "eval" / s.name

        def evaluate_one(s: Scenario = s, ev_dir: Path = ev_dir) -> None:
            run_evaluate(models, [paths[s.name]], ev_dir, overwrite=True, split="all",
                         max_samples=config.max_eval_slices, batch=config.eval_batch, device=device,
                         n_examples=config.n_examples, progress=progress)
        stages.run(f"evaluate {s.name}", _evaluation_current(ev_dir / "results.json", models), evaluate_one)
        evaluations[s.name] = json.loads((ev_dir / "results.json").read_text())
    return evaluations


def _run_stages(config: ExperimentConfig, out: Path, results: Path, device: str, progress: bool,
                echo: Callable[[str], None], command: str) -> dict[str, Any]:
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "experiment.json", json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n")
    train_synth, source_note = training_synth_config(config)
    val_synth = train_synth.replace(seed=config.synth_seed + 1)
    scens = scenarios(config, train_synth)
    stores = {"train": (train_synth, config.n_train), "val": (val_synth, config.n_val)}
    stores.update({s.name: (s.synth, config.n_scenario) for s in scens if s.synth is not None})
    ready = [s for s in scens if s.synth is not None]
    bar = tqdm(total=len(stores) + len(VARIANTS) + len(ready) + 1, desc="ablation", unit="stage",
               disable=not progress)
    stages = _Stages(out, echo, bar)
    paths = {name: out / "stores" / f"{name}.h5" for name in stores}
    _make_stores(config, stores, paths, stages, progress)
    summaries = _train_variants(config, out, paths, stages, device, progress)
    evaluations = _evaluate_scenarios(config, out, paths, ready, stages, device, progress)

    t0 = time.perf_counter()
    report = build_report(config, scens, summaries, evaluations, out=out, source_note=source_note,
                          stages=stages.stages, device=device, estimate=estimate_seconds(config),
                          seconds=time.perf_counter() - t_start, command=command)
    write_report(report, results, {s: out / "eval" / s for s in evaluations})
    stages.stages["report"] = {"status": "done", "seconds": time.perf_counter() - t0}
    bar.update(1)
    bar.close()
    return report


def _evaluation_current(path: Path, models: Mapping[str, str]) -> bool:
    """True if ``path`` (an evaluation's results.json) exists and evaluated exactly ``models``, each checkpoint
    with its present content (SHA-256), so a retrained variant is never reported with stale numbers."""
    if not path.is_file():
        return False
    results = json.loads(path.read_text())
    if results.get("format_version") != EVALUATION_FORMAT_VERSION:
        return False
    done = results.get("models", {})
    if set(done) != set(models):
        return False
    return all(spec in (NLLS, ORACLE) or done[name].get("sha256") == sha256_file(spec)
               for name, spec in models.items())
