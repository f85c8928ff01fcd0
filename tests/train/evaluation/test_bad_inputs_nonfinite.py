"""Bad input class: non-finite inputs or targets in an evaluation store.

``relaxomap evaluate`` checks the samples it will evaluate before any model runs: a NaN / inf input or target
is refused with the store, the part file and the sample named (not an MPE of 1e41 %), exit status 1, and no
``--out`` folder is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from relaxomap.train.cli import main
from relaxomap.train.evaluation.evaluate import evaluate
from tests.synth.store.stores import copy_store, poke


@pytest.mark.parametrize("dataset, value", [("targets", np.nan), ("inputs", np.inf)])
def test_non_finite_sample_is_refused_before_any_model_runs(scenario_store: Path, tiny_checkpoints: dict[str, Path],
                                                           tmp_path: Path, dataset: str, value: float) -> None:
    store = copy_store(scenario_store, tmp_path / "scen.h5")
    part = poke(store, 2, dataset, value, count=4)
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tiny_checkpoints["pe"]), "--store", str(store),
                                    "--split", "all", "--out", str(out), "--quiet"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert f"store {store}: 1 evaluated sample(s) hold non-finite inputs or targets" in res.output
    assert f"{part}: sample 2, dataset {dataset!r}: 4 non-finite value(s)" in res.output
    assert f"relaxomap synth inspect {store}" in res.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["scen.h5", "scen.h5.parts"]


def test_only_the_evaluated_samples_are_checked(scenario_store: Path, tmp_path: Path) -> None:
    """A non-finite sample outside the chosen ones does not block (max_samples picks rows 0 and 3)."""
    store = copy_store(scenario_store, tmp_path / "scen.h5")
    poke(store, 1, "targets", np.nan)
    ev = evaluate(["nlls"], [store], split="all", max_samples=2)
    assert ev.results["scenarios"]["scen"]["n_samples"] == 2
    with pytest.raises(ValueError, match=r"sample 1, dataset 'targets'"):
        evaluate(["nlls"], [store], split="all")
