"""The two reference predictors that :func:`train.evaluation.evaluate.evaluate` scores beside the networks.

- ``nlls`` (:func:`nlls_predict`): the voxel-wise least-squares fit of :mod:`physics.voxel_fit` (needs all
  three contrasts; anchors its unknown gains to the tissue table).
- ``oracle-prior`` (:func:`oracle_prior_predict`): the baseline that only segments. Given the *true* labels it
  writes each voxel's tissue-table value (:func:`physics.tissues.label_lookup` at the sample's field strength)
  for T1, T2 and PD, everywhere in the slice. It is what a network scores if it only recognises tissues and
  recalls the table: on data whose tissue values equal the table its error is 0 (up to partial-volume voxels),
  and on jittered data its error is exactly the jitter, ``(table − true) / true`` per voxel. A network that
  does not beat it in a tissue has not measured that tissue's relaxation times.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["NLLS_NAME", "ORACLE_NAME", "BASELINES", "nlls_predict", "oracle_prior_predict"]

#: Name (and ``models`` value) of the voxel-wise least-squares baseline.
NLLS_NAME = "nlls"
#: Name (and ``models`` value) of the segmentation-only baseline (no checkpoint).
ORACLE_NAME = "oracle-prior"
#: Each baseline's entry in an evaluation's ``models``.
BASELINES: dict[str, dict[str, Any]] = {
    NLLS_NAME: {"kind": "nlls", "arch": "voxel-wise NLLS", "path": None},
    ORACLE_NAME: {"kind": "oracle-prior", "arch": "tissue table at the true labels", "path": None},
}


def nlls_predict(b: Mapping[str, Any], h5: Any, config: Any, name: str, errors: dict[tuple[int, str], str]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The NLLS baseline on one batch, slice by slice.

    Parameters
    ----------
    b : a batch of :class:`synth.store.dataset.SynthDataset` (``inputs``, ``targets``, ``mask``, ``present``,
        ``index``).
    h5 : the open store (``protocols``, ``field_t`` columns).
    config : :class:`physics.voxel_solver.NLLSConfig`.
    name : the model name under which a failure is recorded.
    errors : ``{(store row, name): reason}``, filled for every slice it cannot fit.

    Returns
    -------
    maps (B, 3, H, W) float32 [T1 ms, T2 ms, PD] (0 for a slice it could not fit) and fitted flags (B,) bool.
    """
    from relaxomap.physics.voxel_fit import fit_slice

    x = b["inputs"].numpy()
    mask = b["mask"].numpy()[:, 0] > 0
    rows = b["index"].numpy()
    out = np.zeros_like(b["targets"].numpy())
    ok = np.zeros(len(rows), bool)
    for i, row in enumerate(rows):
        present = b["present"][i].numpy()
        if present.sum() < 3:
            errors[(int(row), name)] = "needs all three contrasts"
            continue
        try:
            res = fit_slice(x[i], h5["protocols"][int(row)], mask[i], present=present,
                            field_t=float(h5["field_t"][int(row)]), config=config)
        except ValueError as err:  # e.g. a slice it cannot calibrate: skip it, say why
            errors[(int(row), name)] = str(err)
            continue
        out[i], ok[i] = res.maps, True
    return out, ok


def oracle_prior_predict(labels: np.ndarray, field_t: np.ndarray, name: str = ORACLE_NAME, rows: Any = None,
                         errors: dict[tuple[int, str], str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The segmentation-only baseline: the tissue table at the true labels.

    Parameters
    ----------
    labels : (B, H, W) integer tissue labels (:mod:`physics.tissues`).
    field_t : (B,) field strength [T] of each slice (1.5 or 3 ± 0.25).
    name, rows, errors : a slice at a field the table does not hold is left at 0, its flag False and, when
        ``errors`` is given, its reason kept in ``errors[(rows[i], name)]``.

    Returns
    -------
    maps (B, 3, H, W) float32 [T1 ms, T2 ms, PD] and predicted flags (B,) bool.
    """
    from relaxomap.physics.tissues import label_lookup

    lab = np.asarray(labels).astype(np.int64)
    out = np.zeros((lab.shape[0], 3, *lab.shape[1:]), np.float32)
    ok = np.zeros(lab.shape[0], bool)
    for i in range(lab.shape[0]):
        try:
            table = label_lookup(float(field_t[i]))
        except ValueError as err:
            if errors is not None:
                errors[(int(rows[i]) if rows is not None else i, name)] = str(err)
            continue
        if lab[i].min() < 0 or lab[i].max() >= len(table):
            if errors is not None:
                errors[(int(rows[i]) if rows is not None else i, name)] = "labels outside the tissue table"
            continue
        out[i] = np.moveaxis(table[lab[i]], -1, 0)
        ok[i] = True
    return out, ok
