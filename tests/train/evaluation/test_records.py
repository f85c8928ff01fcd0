"""Per-slice evaluation records: a store row's acquisition facts name each contrast and leave absent ones empty
(the per-slice metrics are tested with the accumulator in test_metrics.py)."""
from __future__ import annotations

import numpy as np
import pytest

from relaxomap.physics.protocol import PRESETS, SEQUENCE_KIND_NAMES, pack_protocols
from relaxomap.train.evaluation.records import sample_meta


def test_sample_meta_names_contrasts_and_leaves_absent_ones_empty() -> None:
    prots = [PRESETS["t1w_se_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"]]
    row = {
        "present": np.array([[1, 1, 0]], np.uint8),
        "params": np.array([[[p.tr_ms, p.te_ms, p.ti_ms] for p in prots]], np.float32),
        "protocols": pack_protocols(prots)[None],
        "snr": np.array([[30.0, 25.0, 0.0]]),
        "subject_id": np.array([b"phantom-7"]),
        "slice_index": np.array([3]),
        "field_t": np.array([3.0]),
    }
    meta = sample_meta(row, 0)
    assert meta["subject_id"] == "phantom-7" and meta["slice_index"] == 3 and meta["field_t"] == 3.0
    assert meta["present"] == [1, 1, 0]
    kinds = {c: SEQUENCE_KIND_NAMES[int(pack_protocols([p])[0, 0])] for c, p in zip(("t1w", "t2w"), prots)}
    assert meta["kinds"] == {**kinds, "flair": None}
    assert meta["params"]["t2w"] == pytest.approx({"tr_ms": prots[1].tr_ms, "te_ms": prots[1].te_ms, "ti_ms": 0.0})
    assert meta["params"]["flair"] is None and meta["snr"] == {"t1w": 30.0, "t2w": 25.0, "flair": None}
