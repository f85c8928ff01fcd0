"""The evaluation report's tables and summary from a hand-made results dict."""
from __future__ import annotations

from relaxomap.train.evaluation.report import format_scenario, format_summary
from relaxomap.train.evaluation.tables import parenchyma_table, pd_anchor_note, tissue_table, whole_table

_MAPS = ("t1", "t2", "pd_csf", "pd")


def _s(mean: float | None, std: float | None = None) -> dict:
    return {"mean": mean, "std": std, "n": 2}


def _metrics(mpe: float | None, fallback: tuple[str, ...] = ()) -> dict:
    """An accumulator-shaped result: parenchyma MPE ``mpe`` (mean over subjects), one WM row, whole mask."""
    par = {m: {"n_subjects": 2, "mpe_pct": 4.44, "bias_pct": -1.25,
               "subjects": {"mpe_pct": _s(mpe, 0.5), "bias_pct": _s(-1.2, 0.3), "mae": _s(12.345, 1.0),
                            "psnr_db": _s(31.0, None), "ssim": _s(0.95, 0.01)}} for m in _MAPS}
    wm = {m: {"n_voxels": 7, "n_subjects": 2, "mae": 1.0, "mpe_pct": 2.0, "bias_pct": -0.5,
              "subjects": {"mae": _s(1.0), "mpe_pct": _s(2.0, 0.25), "bias_pct": _s(-0.5, 0.1)}} for m in _MAPS}
    brain = {m: {"subjects": {"psnr_db": _s(25.0, 2.0), "ssim": _s(0.9, 0.05)}} for m in _MAPS}
    return {"parenchyma": par, "tissue": {"WM": wm}, "brain": brain, "whole_slice": brain,
            "pd_anchor": {"n_anchored": 2 - len(fallback), "n_fallback": len(fallback), "fallback": list(fallback),
                          "min_csf_voxels": 100}}


def _entry(mpe: float | None, n_skipped: int = 0, fallback: tuple[str, ...] = ()) -> dict:
    return {"metrics": _metrics(mpe, fallback), "n_slices": 2 - n_skipped, "n_skipped": n_skipped}


RESULTS = {"scenarios": {"s": {"n_subjects": 2, "models": {
    "net": _entry(6.0), "nlls": _entry(None, n_skipped=2), "unet": _entry(5.5, fallback=("subj-1",)),
    "oracle-prior": _entry(3.0)}}}}


def test_summary_names_the_lowest_parenchyma_error_and_the_oracle() -> None:
    """The oracle prior is shown beside the best learned model, never chosen as 'best'."""
    text = format_summary(RESULTS)
    assert text.splitlines()[1] == (
        "  s: T1 unet 5.5 % (oracle-prior 3.0 %), T2 unet 5.5 % (oracle-prior 3.0 %), PD (CSF = 1) unet 5.5 % "
        "(oracle-prior 3.0 %); skipped (missing contrast or no fit): {'nlls': 2}")


def test_parenchyma_table_rows_and_missing_values() -> None:
    lines = parenchyma_table({"net": _metrics(6.0), "nlls": None}).splitlines()
    assert len(lines) == 2 + 2 * 4  # header, rule, model x map
    assert lines[2] == ("| net | T1 | 2 | 6.0 ± 0.5 | -1.2 ± 0.3 | 12.3 ± 1.0 ms | 31.00 | 0.950 ± 0.010 | 4.4 "
                        "| -1.2 |")  # no sd given: the mean alone
    assert lines[4].startswith("| net | PD (CSF = 1) | 2 | 6.0 ± 0.5 | -1.2 ± 0.3 | 12.345 ± 1.000 |")
    assert lines[6] == "| nlls | T1 | 0 | – | – | – | – | – | – | – |"


def test_tissue_and_whole_tables() -> None:
    lines = tissue_table({"net": _metrics(6.0)}).splitlines()
    assert lines[0].startswith("| model | tissue | voxels | subjects | T1 MPE [%] | T1 bias [%] |")
    assert lines[2] == "| net | WM | 7 | 2 | " + " | ".join(["2.0 ± 0.2 | -0.5 ± 0.1"] * 3) + " |"
    whole = whole_table({"net": _metrics(6.0)}).splitlines()
    assert "peak = CSF max" in whole[0]
    assert whole[2] == "| net | T1 | 25.00 ± 2.00 | 0.900 ± 0.050 | 25.00 ± 2.00 | 0.900 ± 0.050 |"


def test_pd_anchor_note_names_the_fallback_subjects() -> None:
    assert pd_anchor_note({"a": _metrics(1.0)}) == "PD anchored on CSF for every subject of every model."
    assert pd_anchor_note({"u": _metrics(1.0, ("subj-1",))}) == (
        "u: raw PD scored for 1 of 2 subjects (fewer than 100 core CSF voxels): subj-1.")


def test_scenario_text_labels_every_region() -> None:
    text = format_scenario(RESULTS, "s", detail=True)
    for needle in ("Parenchyma (brain without CSF), 2 subjects:", "Whole brain mask (peak = CSF maximum)",
                   "PD raw per tissue, pooled over voxels", "fixed physiological range L = T1 4000 ms, T2 300 ms, "
                   "PD 1.2", "Slices not evaluated: nlls 2."):
        assert needle in text, needle
