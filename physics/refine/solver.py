"""The exam fit's solver: Levenberg–Marquardt over θ and a voxel subsample with the voxel blocks eliminated.

Normal equations of the cost in :mod:`physics.refine.exam` (residuals r = (m − y)/σ, Jacobians A = ∂r/∂x per
voxel (C × 3), B = ∂r/∂θ (C × P)):

    [H_xx  H_xθ] [δx]     [g_x]       H_xx = blockdiag(AᵀA + S_v⁻²),  H_xθ = AᵀB,
    [H_θx  H_θθ] [δθ] = − [g_θ],      H_θθ = Σ BᵀB + S_θ⁻²

solved through the Schur complement S = H_θθ − Σ_v H_θx H_xx⁻¹ H_xθ (P × P), with Marquardt damping
(λ·diag) on both blocks. At the optimum S⁻¹ (undamped) is θ's posterior covariance with the voxels
marginalised.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relaxomap.physics.refine.exam import ExamState, exam_model

__all__ = ["ExamFit", "fit_exam", "t1_scale_sd", "prior_shift_response"]


@dataclass
class ExamFit:
    """θ (P,), the subsample's x (N, 3), θ's posterior covariance (P, P), dx/dθ (N, 3, P), the final cost and
    the iterations run."""

    theta: np.ndarray
    x: np.ndarray
    covariance: np.ndarray
    dx_dtheta: np.ndarray
    cost: float
    iterations: int
    blocks: tuple[np.ndarray, ...] = ()


def _theta_prior(state: ExamState) -> tuple[np.ndarray, np.ndarray]:
    """θ's prior means and precisions 1/sd² (0 where the prior is flat)."""
    sd = np.asarray(state.layout.sd)
    precision = np.where(np.isfinite(sd) & (sd > 0), 1.0 / np.where(sd > 0, sd, 1.0) ** 2, 0.0)
    return np.asarray(state.layout.mean), precision


def _blocks(state: ExamState, theta: np.ndarray, x: np.ndarray, x0: np.ndarray, s: np.ndarray
            ) -> tuple[float, tuple[np.ndarray, ...]]:
    mean, w = _theta_prior(state)
    m, dx, dth = exam_model(state, theta, x)
    r = (m - state.y) / state.sigma
    a = dx / state.sigma[..., None]
    b = dth / state.sigma[..., None]
    rv = (x - x0) / s
    hxx = np.einsum("nci,ncj->nij", a, a) + np.eye(3)[None] / s[:, :, None] ** 2
    hxt = np.einsum("nci,ncp->nip", a, b)
    htt = np.einsum("ncp,ncq->pq", b, b) + np.diag(w)
    gx = np.einsum("nci,nc->ni", a, r) + rv / s
    gt = np.einsum("ncp,nc->p", b, r) + (theta - mean) * w
    cost = float((r ** 2).sum() + (rv ** 2).sum() + ((theta - mean) ** 2 * w).sum())
    return cost, (hxx, hxt, htt, gx, gt)


def _cost(state: ExamState, theta: np.ndarray, x: np.ndarray, x0: np.ndarray, s: np.ndarray) -> float:
    mean, w = _theta_prior(state)
    m, _, _ = exam_model(state, theta, x, jac=False)
    return float((((m - state.y) / state.sigma) ** 2).sum() + (((x - x0) / s) ** 2).sum()
                 + ((theta - mean) ** 2 * w).sum())


def _solve(blocks: tuple[np.ndarray, ...], lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(δx, δθ, S⁻¹, dx/dθ) of the damped normal equations."""
    hxx, hxt, htt, gx, gt = blocks
    hxx = hxx + lam * np.einsum("nii->ni", hxx)[:, :, None] * np.eye(3)[None]
    htt = htt + lam * np.diag(np.diag(htt)) + 1e-9 * np.eye(len(htt))
    inv = np.linalg.inv(hxx)
    k = inv @ hxt  # (N, 3, P)
    s = htt - np.einsum("nip,niq->pq", hxt, k)
    rhs = -gt + np.einsum("nip,ni->p", hxt, np.einsum("nij,nj->ni", inv, gx))
    s_inv = np.linalg.inv(s)
    dtheta = s_inv @ rhs
    dx = -np.einsum("nij,nj->ni", inv, gx) - k @ dtheta
    return dx, dtheta, s_inv, -k


def _clip_x(state: ExamState, x: np.ndarray) -> np.ndarray:
    g = state.dictionary.grid
    out = x.copy()
    out[:, 0] = np.clip(out[:, 0], g.log_t1[0], g.log_t1[-1])
    out[:, 1] = np.clip(out[:, 1], g.log_t2[0], g.log_t2[-1])
    out[:, 2] = np.maximum(out[:, 2], 1e-4)
    return out


def fit_exam(state: ExamState, theta0: np.ndarray, x_init: np.ndarray, x_prior: np.ndarray, s: np.ndarray,
             iterations: int) -> ExamFit:
    """Levenberg–Marquardt from (θ0, x_init) under the voxel prior (x_prior, s) (N, 3) and θ's layout prior;
    at most ``iterations`` accepted or rejected steps, stopping when the relative cost change is < 1e-6."""
    lay = state.layout
    theta, x = lay.clip(np.asarray(theta0, np.float64)), _clip_x(state, np.asarray(x_init, np.float64))
    lam, it = 1e-3, 0
    cost, blocks = _blocks(state, theta, x, x_prior, s)
    for it in range(1, iterations + 1):
        dx, dth, _, _ = _solve(blocks, lam)
        t_new, x_new = lay.clip(theta + dth), _clip_x(state, x + dx)
        c_new = _cost(state, t_new, x_new, x_prior, s)
        if c_new < cost:
            done = (cost - c_new) < 1e-6 * cost
            theta, x, lam = t_new, x_new, max(lam / 10.0, 1e-9)
            cost, blocks = _blocks(state, theta, x, x_prior, s)
            if done:
                break
        else:
            lam *= 10.0
            if lam > 1e8:
                break
    cost, blocks = _blocks(state, theta, x, x_prior, s)
    _, _, cov, dxdt = _solve(blocks, 0.0)
    return ExamFit(theta, x, cov, dxdt, cost, it, blocks)


def t1_scale_sd(state: ExamState, fit: ExamFit, x_prior: np.ndarray, s: np.ndarray, select: np.ndarray) -> float:
    """Posterior sd of the mean ln T1 over the ``select``-ed subsample voxels (N,) bool that the exam's
    uncertainty leaves (d ln T1 / dθ averaged, propagated through θ's covariance) — the exam-level
    uncertainty of the T1 scale, as a fraction (×100: %). The network's errors are shared within an exam, not
    independent per voxel, so here its prior counts once for the whole subsample (each voxel's prior sd × √N):
    what is left is what the data pin."""
    if not np.any(select):
        return float("nan")
    _, blocks = _blocks(state, fit.theta, fit.x, x_prior, s * np.sqrt(len(s)))
    _, _, cov, dxdt = _solve(blocks, 0.0)
    g = dxdt[select, 0, :].mean(axis=0)
    return float(np.sqrt(max(g @ cov @ g, 0.0)))


def prior_shift_response(fit: ExamFit, x_prior: np.ndarray, s: np.ndarray, select: np.ndarray, rel: float
                         ) -> float:
    """Change of the mean ln T1 over the ``select``-ed voxels when their PD prior mean moves by the fraction
    ``rel`` (linear response of the MAP: H δz = S_v⁻² δx̂, through the Schur complement)."""
    if not np.any(select) or not fit.blocks:
        return float("nan")
    hxx, hxt, htt, _, _ = fit.blocks
    shift = np.zeros_like(x_prior)
    shift[select, 2] = rel * x_prior[select, 2]
    gx = -shift / s ** 2  # the gradient at the old optimum after the prior mean moved
    dx, _, _, _ = _solve((hxx, hxt, htt, gx, np.zeros(len(htt))), 0.0)
    return float(dx[select, 0].mean())
