"""The look inside a store: the summary's counts and ranges, its text form, and the PNG montage."""
from __future__ import annotations

from pathlib import Path

from relaxomap.synth.store.summary import format_summary, montage, summarize
from tests.synth.store.stores import N, SIZE, SLICES, read_all


def test_summary_counts_and_ranges(reference: Path) -> None:
    s = summarize(reference)
    data = read_all(reference)
    assert s["n_samples"] == N and s["image_size"] == [SIZE, SIZE] and s["schema_version"] == 1
    assert s["n_subjects"] == -(-N // SLICES) == s["n_split_keys"]  # phantoms: one split key per subject
    assert s["fields_t"] == {"3": N}
    for c, contrast in enumerate(("t1w", "t2w", "flair")):
        present = data["present"][:, c].astype(bool)
        assert s["present"][contrast] == present.mean()
        tr_ms = data["params"][present, c, 0]
        assert s["params_ms"][contrast]["tr"] == [tr_ms.min(), tr_ms.max()]
        assert sum(s["kinds"][contrast].values()) == present.sum()
    p1, median, p99 = s["targets_in_mask"]["t1_ms"]
    assert 0 < p1 <= median <= p99 < 6000  # T1 [ms] in the brain mask
    text = format_summary(s)
    assert f"samples        {N}  of {SIZE}x{SIZE}" in text and "t1_ms  in brain mask" in text


def test_montage_writes_a_png(reference: Path, tmp_path: Path) -> None:
    png = montage(reference, tmp_path / "m.png", n=2)
    assert png == tmp_path / "m.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temporary left behind
    assert png.stat().st_size > 1000  # 2 rows of 8 images
