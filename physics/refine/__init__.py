"""relaxomap.physics.refine — test-time physics refinement: maps that explain the images they came from,
with the exam's unknowns (gains, transmit field, refocusing angles, inversion efficiency, receive fields)
estimated, not assumed (tracker issue 15; ``relaxomap predict --refine``).

Modules
-------
    ``config``      ``RefineConfig``: the stated priors, dictionary grid and solver settings.
    ``dictionary``  the exam's own signed signal tables over (B1, ln T1, ln T2) and their trilinear look-up.
    ``exam``        the exam-level model: parameter layout with priors, smooth-field basis, signals and
                    Jacobians.
    ``solver``      Levenberg–Marquardt over the exam parameters and a voxel subsample (Schur complement),
                    posterior covariance, the T1-scale uncertainty.
    ``voxel``       per-voxel MAP by dictionary search with both inversion-recovery branches (Numba).
    ``pipeline``    ``refine_exam``: noise, exam fit, voxel search, rounds, residuals, the exam record.
    ``bench``       ``relaxomap bench refine``: a clinical-size exam refined beside the NLLS fit, same run.
"""
from __future__ import annotations

from relaxomap.physics.refine.config import RefineConfig
from relaxomap.physics.refine.pipeline import RefineResult, refine_exam

__all__ = ["RefineConfig", "RefineResult", "refine_exam"]
