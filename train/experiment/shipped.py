"""The evaluation of the shipped default model on the experiment's scenarios (``relaxomap experiment shipped``):
today's state of the one trained model the project keeps, with the ablation page's targets, floors and oracle
prior (docs/evaluation/results.md).

Stages under ``out/`` (a finished one is skipped when run again): ``stores/<scenario>.h5``
(:func:`train.experiment.stores.write_scenario_stores`, the ablation's own scenario stores at ``config``'s
sizes and seeds), ``eval/<scenario>/`` (:func:`train.evaluation.evaluate.run_evaluate` of the checkpoint, the
NLLS fit and the oracle prior; redone when the checkpoint changed), then the page, its JSON twin and
``<stem>_figures/`` (:func:`train.experiment.page.write_report`). No training, no tuning: the test stores
only feed the numbers.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from relaxomap import __version__
from relaxomap.atomic import check_output_file
from relaxomap.train.evaluation.results import json_safe
from relaxomap.train.evaluation.tables import PARENCHYMA_NOTE, WHOLE_NOTE
from relaxomap.train.experiment.config import NLLS, ORACLE, REPO_ROOT, ExperimentConfig
from relaxomap.train.experiment.floors import compute_floors
from relaxomap.train.experiment.page import scenario_section, scenario_table, target_lines, write_report
from relaxomap.train.experiment.report import scenario_entries, target_rows
from relaxomap.train.experiment.stores import write_scenario_stores

__all__ = ["SHIPPED", "DEFAULT_CHECKPOINT", "run_shipped", "render_shipped_page"]

#: Name of the evaluated network in the results.
SHIPPED = "default-model"
DEFAULT_CHECKPOINT = REPO_ROOT / "train" / "clinical" / "default_model" / "model.pt"
_NAMES = {SHIPPED: "shipped default model", NLLS: "NLLS fit", ORACLE: "oracle prior"}


def run_shipped(config: ExperimentConfig, out: str | os.PathLike, results: str | os.PathLike, *,
                checkpoint: str | os.PathLike | None = None, device: str = "cpu", progress: bool = True,
                echo: Callable[[str], None] = print, command: str = "") -> dict[str, Any]:
    """Make the scenario stores, evaluate ``checkpoint`` (default: the shipped model), the NLLS fit and the oracle
    prior on each, and write the page ``results`` (+ ``<stem>.json``, ``<stem>_figures/``); returns the report.

    Raises
    ------
    FileNotFoundError : the checkpoint is missing. ValueError : ``results`` is not a markdown page or cannot be
    written; invalid data.
    """
    from relaxomap.train.checkpoint import sha256_file
    from relaxomap.train.evaluation.evaluate import run_evaluate

    t_start = time.perf_counter()
    out, results = Path(out), Path(results)
    ckpt = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(f"--checkpoint {ckpt} is not a file")
    if results.suffix != ".md":
        raise ValueError(f"--results {results} must be the markdown page (*.md); its JSON twin is written beside it")
    check_output_file(results, "--results", overwrite=True)
    scens, stores = write_scenario_stores(config, out / "stores", progress=progress, echo=echo)
    t_stores = time.perf_counter() - t_start
    models = {SHIPPED: str(ckpt), NLLS: NLLS, ORACLE: ORACLE}
    evaluations, folders, seconds = {}, {}, {}
    n_slices = min(config.max_eval_slices, config.n_scenario)
    for name, store in stores.items():
        folders[name] = out / "eval" / name
        seconds[name] = None  # reused
        if not _current(folders[name] / "results.json", models, name, n_slices):
            t0 = time.perf_counter()
            run_evaluate(models, [store], folders[name], overwrite=True, split="all",
                         max_samples=config.max_eval_slices, batch=config.eval_batch, device=device,
                         n_examples=config.n_examples, progress=progress)
            seconds[name] = time.perf_counter() - t0
            echo(f"evaluate {name}: {seconds[name]:.1f} s")
        evaluations[name] = json.loads((folders[name] / "results.json").read_text())
    scen = scenario_entries(config, scens, evaluations, list(models))
    floors = compute_floors()
    report = {"format": "relaxomap-shipped-evaluation", "format_version": 1,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": __version__,
              "command": command, "device": device, "config": config.to_dict(), "work_folder": str(out),
              "checkpoint": {"path": _shown_path(ckpt), "sha256": sha256_file(ckpt)}, "reference": SHIPPED,
              "scenarios": scen, "floors": floors,
              "targets": target_rows(scen, SHIPPED, floors, healthy_only_training=False),
              "seconds_stores": t_stores, "seconds_evaluate": seconds, "seconds": time.perf_counter() - t_start}
    report = json_safe(report)
    write_report(report, results, folders, render=render_shipped_page)
    return report


def _current(path: Path, models: Mapping[str, str], name: str, n_slices: int) -> bool:
    """An evaluation in the work folder is reused when it evaluated exactly ``models`` (checkpoint content
    included) on ``n_slices`` slices of scenario ``name``."""
    from relaxomap.train.experiment.ablation import _evaluation_current

    if not _evaluation_current(path, models):
        return False
    n = json.loads(path.read_text()).get("scenarios", {}).get(name, {}).get("n_samples")
    return n == n_slices


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _evaluation_time(seconds: Mapping[str, float | None]) -> str:
    made = [v for v in seconds.values() if v is not None]
    text = f"evaluations {_minutes(sum(made))} ({len(made)} scenarios"
    reused = len(seconds) - len(made)
    return text + (f"; {reused} reused)" if reused else ")")


def render_shipped_page(report: Mapping[str, Any], figures: Mapping[str, Sequence[str]], fig_dir: str) -> str:
    """The markdown page of :func:`run_shipped`'s report (figures linked from ``fig_dir``)."""
    cfg, ck = report["config"], report["checkpoint"]
    lines = [
        "# relaxomap evaluation: the shipped default model on the experiment's scenarios", "",
        f"Created {report['created']} by relaxomap {report['package_version']} on device `{report['device']}` "
        f"with `{report['command']}`; this call took {_minutes(report['seconds'])}: stores "
        f"{_minutes(report['seconds_stores'])}, " + _evaluation_time(report["seconds_evaluate"]) + " (work folder "
        f"`{report['work_folder']}`; a rerun there reuses its stores and evaluations).", "",
        f"**Evaluated**: the shipped default model `{ck['path']}` (sha256 `{ck['sha256'][:16]}…`, "
        "`train/clinical/default_model/MODEL_CARD.md`), the one trained model the project keeps — the ablation's "
        "variant checkpoints behind the old [`docs/results.md`](../results.md) were not kept, so this page has no "
        "variant comparison. Beside it: the **oracle prior** (each voxel gets the tissue table's value at its "
        "*true* label, `physics/tissues.py`: what a network scores if it only recognises tissues; on the "
        "value-shift scenarios its error is the shift itself, and a network that does not beat it in a tissue "
        "has not measured that tissue) and the voxel-wise **NLLS fit** (`physics/voxel_fit.py`, needs all three "
        "contrasts).", "",
        "**Lesions were in this model's training data** (the default recipe, `synth_train.json`, draws MS "
        "plaques, tumours and infarcts), so its numbers on `lesions` are **not** an unseen-lesion test (\"unseen\" in "
        "the scenario table below refers to the ablation's healthy-only training).", "",
        "## Set-up", "",
        f"- **Scenario stores**: the ablation's own scenario recipes (`train.experiment.config.scenarios`) at the "
        f"`{cfg['label']}` experiment size: {cfg['n_scenario']} axial slices of "
        f"{cfg['image_size']}² px per scenario, {cfg['scenario_slices_per_subject']} per head, seeds "
        f"{cfg['synth_seed']} + 101 + k; {cfg['max_eval_slices']} evenly spaced whole slices of each are "
        "evaluated. The value-shift scenarios (`shifted_values`, `shifted_subject47`, `oedema_pd`) move every "
        "subject's tissue values off the tables (`synth/value_shift.py`); nothing was tuned on any of them.",
        "- **Metrics**: `train/evaluation/metrics.py`. Subjects are the unit: each subject's MAE, MPE and signed "
        "bias are pooled over its voxels (PSNR / SSIM averaged over its slices), tables give mean ± sample sd "
        "over subjects. " + PARENCHYMA_NOTE,
        "- " + WHOLE_NOTE, ""]
    lines += scenario_table(report)
    lines += target_lines(report, f"the shipped default model (`{SHIPPED}`)")
    lines += ["", "## Results per scenario", ""]
    for name, s in report["scenarios"].items():
        lines += scenario_section(name, s, _NAMES, list(figures.get(name, [])), fig_dir,
                                  detail=f"`{report['work_folder']}/eval/{name}/results.md`")
    lines += ["## Reproduce", "", "```bash", report["command"] or "relaxomap experiment shipped", "```",
              "", "The stores alone: `relaxomap experiment scenarios --out DIR` (the same files as "
              "`<work folder>/stores/`).", ""]
    return "\n".join(lines)
