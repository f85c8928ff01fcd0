"""The experiment's scenario stores without the training: ``relaxomap experiment scenarios`` and the evaluation
of the shipped model (:mod:`train.experiment.shipped`) write exactly the stores the ablation evaluates.

:func:`write_one_store` is the one way the experiment writes a store (the ablation uses it too);
:func:`write_scenario_stores` writes every scenario of :func:`train.experiment.config.scenarios` whose data
exist as ``<out>/<scenario>.h5`` (file stem = scenario name, which ``relaxomap evaluate`` uses). A finished
store with the same settings is returned at once (``write_store`` resumes its own parts), so a rerun only
makes what is missing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from relaxomap.train.experiment.config import ExperimentConfig, Scenario, scenarios, training_synth_config

__all__ = ["write_one_store", "experiment_scenarios", "write_scenario_stores"]


def write_one_store(config: ExperimentConfig, synth: Any, path: Path, n: int, name: str, progress: bool) -> Any:
    """Write (or resume) the ``n``-slice store ``path`` of generator ``synth`` with ``config.synth_workers``
    processes; a small store is cut into at least one part per worker so every worker has one to generate."""
    from tqdm.auto import tqdm

    from relaxomap.synth.store.parts import default_part_subjects
    from relaxomap.synth.store.writer import write_store

    path.parent.mkdir(parents=True, exist_ok=True)
    n_subjects = -(-n // synth.slices_per_subject)
    part = min(default_part_subjects(synth), max(1, -(-n_subjects // config.synth_workers)))
    with tqdm(total=n, desc=f"synth {name}", unit="slice", leave=False, disable=not progress) as bar:
        return write_store(synth, path, n, workers=config.synth_workers, part_subjects=part, progress=bar.update)


def experiment_scenarios(config: ExperimentConfig, names: Sequence[str] = ()) -> list[Scenario]:
    """The experiment's scenarios (all, or those in ``names``, in the experiment's order).

    Raises
    ------
    ValueError : a name that is not a scenario (the known ones listed).
    """
    scens = scenarios(config, training_synth_config(config)[0])
    known = [s.name for s in scens]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; the experiment's scenarios: {', '.join(known)}")
    return [s for s in scens if not names or s.name in names]


def write_scenario_stores(config: ExperimentConfig, out: str | os.PathLike, names: Sequence[str] = (), *,
                          progress: bool = True, echo: Callable[[str], None] = print
                          ) -> tuple[list[Scenario], dict[str, Path]]:
    """Write ``<out>/<scenario>.h5`` (``config.n_scenario`` slices) for every scenario (or those in ``names``)
    whose data exist; a scenario without data is announced with its note and skipped.

    Returns
    -------
    (the scenarios, ``{name: store path}`` of those written).
    """
    from relaxomap.atomic import check_output_dir

    out = Path(out)
    check_output_dir(out, existing_ok=True, what="--out")
    scens = experiment_scenarios(config, names)
    paths: dict[str, Path] = {}
    for s in scens:
        if s.synth is None:
            echo(f"{s.name}: {s.note}")
            continue
        paths[s.name] = out / f"{s.name}.h5"
        write_one_store(config, s.synth, paths[s.name], config.n_scenario, s.name, progress)
        echo(f"{s.name}: {paths[s.name]} ({config.n_scenario} slices, seed {s.synth.seed})")
    return scens, paths
