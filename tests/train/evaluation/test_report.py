"""The evaluation report's tables and summary from a hand-made results dict."""
from __future__ import annotations

from relaxomap.train.evaluation.report import format_main_table, format_summary, format_tissue_table


def _entry(psnr: float | None, n_skipped: int = 0) -> dict:
    per_slice = {m: {"psnr_db": {"mean": psnr, "std": 1.0, "n": 2}, "ssim": {"mean": 0.9, "std": None, "n": 2}}
                 for m in ("t1", "t2", "pd")}
    metrics = {"brain": {m: {"mae": 12.345, "mpe_pct": 4.0} for m in ("t1", "t2", "pd")},
               "tissue": {"WM": {m: {"mae": 1.0, "mpe_pct": 2.0, "bias": -0.5, "n_voxels": 7}
                                 for m in ("t1", "t2", "pd")}}}
    return {"metrics": metrics, "per_slice": per_slice, "n_slices": 2 - n_skipped, "n_skipped": n_skipped}


RESULTS = {"scenarios": {"s": {"models": {"net": _entry(30.0), "nlls": _entry(None, n_skipped=2),
                                          "unet": _entry(31.5)}}}}


def test_summary_names_the_best_model_per_map_and_the_skips() -> None:
    text = format_summary(RESULTS)
    assert text.splitlines() == [
        "Summary (best brain PSNR per scenario and map):",
        "  s: T1 unet 31.50 dB, T2 unet 31.50 dB, PD unet 31.50 dB; skipped (missing contrast): {'nlls': 2}",
    ]


def test_main_table_rows_and_missing_values() -> None:
    lines = format_main_table(RESULTS, "s").splitlines()
    assert len(lines) == 2 + 3 * 3  # header, rule, model x map
    assert lines[2].startswith("| net | T1 | 2 | 30.00 ± 1.00 | 0.900 | 12.3 ms | 4.0 |")
    nlls_t1 = next(ln for ln in lines if ln.startswith("| nlls | T1 |"))
    assert "| 0 | – |" in nlls_t1  # no finite PSNR: a dash, not "None"


def test_tissue_table_has_one_row_per_model_and_tissue() -> None:
    lines = format_tissue_table(RESULTS, "s").splitlines()
    assert lines[2] == "| net | WM | 7 | 1.0 | 2.0 | -0.5 | 1.0 | 2.0 | -0.5 | 1.000 | 2.0 | -0.500 |"
    assert len(lines) == 2 + 3
