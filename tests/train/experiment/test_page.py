"""The ablation's terminal summary: the reference's PSNR per scenario and every target's state."""
from __future__ import annotations

from relaxomap.train.experiment.page import format_summary


def test_summary_lists_scenarios_and_targets() -> None:
    psnr = {m: {"psnr_db": {"mean": v}} for m, v in (("t1", 30.04), ("t2", None), ("pd", 28.96))}
    report = {
        "reference": "ref",
        "scenarios": {"internal_test": {"summary": {"ref": psnr}},
                      "real_subject47": {"note": "skipped: subject47.npz not found"}},
        "targets": [
            {"scenario": "internal_test", "target": "masked PSNR T1 [dB]", "value": 30.04, "op": ">=",
             "threshold": 38.0, "met": False},
            {"scenario": "lesions", "target": "MPE in lesions T1 [%]", "value": None, "op": "<", "threshold": 10.0,
             "met": None},
        ],
    }
    assert format_summary(report).splitlines() == [
        "  internal_test: ref masked PSNR T1 / T2 / PD 30.0 / – / 29.0 dB",
        "  real_subject47: not evaluated (skipped: subject47.npz not found)",
        "Targets: 0 met, 1 missed, 1 not checked",
        "  internal_test: masked PSNR T1 [dB] = 30.04 (>= 38): NOT met",
        "  lesions: MPE in lesions T1 [%] = – (< 10): n/a",
    ]
