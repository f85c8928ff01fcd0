"""What three weighted images can tell: the best achievable precision of T1, T2 and PD per tissue.

A linearised posterior (Bayesian Cramér–Rao bound) with the exam's unknowns marginalised.

Model
-----
Tissue k (mean values T1_k [ms], T2_k [ms], PD_k) seen in contrast c gives the magnitude

    s_kc = g_c · b_k · PD_k · f_c(T1_k, T2_k; α_c, κ_c)

with f_c the forward model (:func:`relaxomap.physics.forward.render`: EPG for the spin-echo kinds, or the
closed form),
α_c the refocusing angle of a spin-echo series and κ_c the inversion efficiency of an inversion series — both
unknown in practice (not in the DICOM / BIDS headers) —, g_c an unknown gain per contrast (receiver scaling,
prescan normalisation) and b_k a smooth receive (bias) field at the tissue, shared by all contrasts, so that
only its prior separates it from PD. Noise is Gaussian with standard deviation σ_c = s̄_c / SNR_c, where s̄_c
is the mean of the WM and GM signals of contrast c: SNR is that of one voxel of parenchyma.

The parameters θ are (ln T1_k, ln T2_k, ln PD_k, ln b_k per tissue; ln g_c per contrast; α_c; κ_c). Their
posterior covariance is the inverse of Jᵀ Σ⁻¹ J + P: the data's Fisher information (J by central finite
differences of the forward model) plus the prior's precision, each prior written as the Gaussian with the
standard deviation of the uniform prior it stands for (width / √12). Two levels are reported:

- **tissue mean** (exam level): every tissue seen in ``n_voxels`` voxels. Its posterior sd is the floor of the
  signed bias an ideal estimator could reach: the gains are shared by all tissues, so more voxels do not
  help along the directions the data cannot see.
- **one voxel**: its own T1 / T2 / PD / bias drawn from the tissue's prior and seen once, beside the exam
  (whose data inform the shared gains, angles and efficiencies).

Priors (fixed, not tuned): T1 and T2 of parenchyma and lesions log-uniform over ±40 % around the tissue
table (:mod:`relaxomap.physics.tissues`); PD within ±5 % (water content); CSF as water: T1 3.6–4.4 s, PD 1
(±1 %), T2 ±40 %; gains free (sd 10 in ln g); bias field sd ``bias_sd`` in ln b; refocusing angle uniform
120–180°; inversion efficiency uniform 0.90–1.00.

Where the data carry no information — the two gain ratios, the product PD·b — the posterior *is* the prior.
Every result gives, per tissue and map, the ratio of posterior to prior sd and calls a bound
``"prior"``-limited when that ratio exceeds 0.8 (the data remove less than a third of the prior variance),
``"data"``-limited below 0.5. A tissue whose magnitude inversion-recovery signal lies within 3 σ of the null
has two T1 solutions; its bound is local (about the table value) and is flagged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range
from relaxomap.physics.forward import check_forward, effective_forward, render
from relaxomap.physics.protocol import Protocol
from relaxomap.physics.tissues import tissue_values

__all__ = ["PRIOR", "BoundsConfig", "TissueBound", "BoundsResult", "Advice", "bounds", "forward_signals",
           "candidate_contrasts", "advise"]

_IR_KINDS = ("ir_tse", "mprage")
_MAPS = ("t1", "t2", "pd")
_SQRT12 = math.sqrt(12.0)

#: The fixed priors: (lo, hi) of each uniform prior, as a factor of the table value for ``*_factor``.
PRIOR: dict[str, tuple[float, float]] = {
    "relaxation_factor": (0.6, 1.4),  # T1, T2 of parenchyma / lesions, and CSF T2: log-uniform ±40 %
    "pd_factor": (0.95, 1.05),  # PD: water content ±5 %
    "csf_t1_ms": (3600.0, 4400.0),  # CSF as water [ms], log-uniform
    "csf_pd": (0.99, 1.01),  # CSF PD = 1 (the scale)
    "refocus_deg": (120.0, 180.0),  # refocusing angle [deg]
    "inversion_efficiency": (0.90, 1.00),
}
_GAIN_SD = 10.0  # sd of ln g: free


def _uniform_sd(lo: float, hi: float) -> float:
    return (hi - lo) / _SQRT12


@dataclass(frozen=True)
class BoundsConfig:
    """Settings of :func:`bounds`.

    Parameters
    ----------
    tissues : tissue names of :mod:`relaxomap.physics.tissues` to report (WM and GM set the SNR reference
        whether listed or not).
    snr : SNR of one parenchyma voxel per contrast (one value for all, or one per protocol).
    n_voxels : voxels per tissue seen by the exam-level (tissue-mean) fit.
    bias_sd : sd of the smooth receive field's log at a tissue (residual after bias correction).
    unknown_refocus : marginalise the refocusing angle of each spin-echo series (else known, as given).
    unknown_inversion : marginalise the inversion efficiency of each inversion series (else known).
    forward : ``"epg"`` (spin-echo kinds by EPG, others closed form) or ``"closed"`` (closed form only, where
        the refocusing angle does not enter: then it is never marginalised).
    prior : replacements for entries of :data:`PRIOR` (keys as there). The reports use the fixed defaults; a
        narrower prior is for checking the linearisation (it is exact as the posterior narrows).
    """

    tissues: tuple[str, ...] = ("WM", "GM", "deep GM", "CSF", "MS lesion")
    snr: float | tuple[float, ...] = 30.0
    n_voxels: int = 1000
    bias_sd: float = 0.05
    unknown_refocus: bool = True
    unknown_inversion: bool = True
    forward: str = "epg"
    prior: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tissues:
            raise ValueError("BoundsConfig.tissues must name at least one tissue; got none")
        for name in self.tissues:
            tissue_values(name)  # raises naming the tissue and the known names
        snr = (self.snr,) if isinstance(self.snr, (int, float)) else tuple(self.snr)
        for v in snr:
            check_finite_range("BoundsConfig", "snr", v, 0.0, 1e6, lo_open=True)
        object.__setattr__(self, "snr", snr[0] if len(snr) == 1 else tuple(float(v) for v in snr))
        check_int_range("BoundsConfig", "n_voxels", self.n_voxels, 1, 10**9)
        check_finite_range("BoundsConfig", "bias_sd", self.bias_sd, 0.0, 1.0)
        unknown = sorted(set(self.prior) - set(PRIOR))
        if unknown:
            raise ValueError(f"BoundsConfig.prior: unknown entries {unknown}; known: {sorted(PRIOR)}")
        for key, (lo, hi) in self.prior.items():
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
                raise ValueError(f"BoundsConfig.prior[{key!r}] must be 0 < lo < hi; got ({lo}, {hi})")
        object.__setattr__(self, "prior", {k: (float(v[0]), float(v[1])) for k, v in self.prior.items()})
        try:
            check_forward(self.forward)
        except ValueError as err:
            raise ValueError(f"BoundsConfig.{err}") from None


@dataclass(frozen=True)
class TissueBound:
    """Bounds of one tissue: per map (``t1``, ``t2``, ``pd``) the relative sd [%] of the prior, of the tissue
    mean and of one voxel, the ratio posterior / prior of the tissue mean, and what limits it."""

    tissue: str
    table: dict[str, float]  # T1 [ms], T2 [ms], PD at the linearisation point
    prior_pct: dict[str, float]
    mean_pct: dict[str, float]
    voxel_pct: dict[str, float]
    ratio: dict[str, float]
    limited_by: dict[str, str]  # "prior", "data" or "both"
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BoundsResult:
    """Output of :func:`bounds`: one :class:`TissueBound` per tissue, the setting and the exam parameters'
    posterior sd (``exam_sd``: ln g per contrast, α [deg], κ)."""

    tissues: tuple[TissueBound, ...]
    protocols: tuple[dict[str, Any], ...]
    config: dict[str, Any]
    exam_sd: dict[str, float]
    n_unidentified: int  # directions of the exam-level parameter space the data alone do not inform

    def to_dict(self) -> dict[str, Any]:
        return {"protocols": list(self.protocols), "config": self.config, "exam_sd": self.exam_sd,
                "n_unidentified": self.n_unidentified,
                "tissues": [vars(t) | {"flags": list(t.flags)} for t in self.tissues]}

    def to_markdown(self) -> str:
        """A table: per tissue and map the tissue-mean and one-voxel bounds beside the prior."""
        head = ("| tissue | map | prior sd [%] | tissue-mean bound [%] | one-voxel bound [%] | post/prior "
                "| limited by |\n|---|---|---|---|---|---|---|")
        rows = [head]
        for t in self.tissues:
            for m in _MAPS:
                rows.append(f"| {t.tissue} | {m.upper()} | {t.prior_pct[m]:.1f} | {t.mean_pct[m]:.2f} | "
                            f"{t.voxel_pct[m]:.2f} | {t.ratio[m]:.2f} | {t.limited_by[m]} |")
        notes = [f"- {t.tissue}: {f}" for t in self.tissues for f in t.flags]
        return "\n".join(rows + ([""] + notes if notes else []))


# ---------------------------------------------------------------------------------------------- forward model
def forward_signals(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, protocols: Sequence[Protocol],
                    forward: str = "epg") -> np.ndarray:
    """(C, K) magnitudes of K voxels (t1_ms, t2_ms [ms], pd: (K,)) in C protocols, as float64.

    The float32 kernels of :func:`relaxomap.physics.forward.render`: their rounding (6e-8 relative) over the
    finite-difference steps of :meth:`_Model.jacobian` (1e-3) leaves derivatives good to 1e-4.
    """
    return render(np.asarray(t1_ms, np.float64), np.asarray(t2_ms, np.float64), np.asarray(pd, np.float64),
                  list(protocols), forward=forward).astype(np.float64)


class _Model:
    """Parameter layout, linearisation point, prior and Jacobian of the model in the module docstring."""

    def __init__(self, protocols: Sequence[Protocol], config: BoundsConfig) -> None:
        self.config = config
        self.prior = PRIOR | config.prior
        field_t = protocols[0].field_t
        self.names = tuple(config.tissues)
        table = [tissue_values(n, field_t) for n in self.names]
        self.t1 = np.array([t.t1_ms for t in table], np.float64)
        self.t2 = np.array([t.t2_ms for t in table], np.float64)
        self.pd = np.array([t.pd for t in table], np.float64)
        self.is_csf = np.array([n.upper() == "CSF" for n in self.names])
        refocus_free = config.unknown_refocus and config.forward == "epg"
        self.alpha_of = [c for c, p in enumerate(protocols) if refocus_free and effective_forward(p, "epg") == "epg"]
        self.kappa_of = [c for c, p in enumerate(protocols) if config.unknown_inversion and p.kind in _IR_KINDS]
        # An unknown angle / efficiency is linearised at its prior's centre (the prior mean of the bound).
        alpha0, kappa0 = (float(np.mean(self.prior[k])) for k in ("refocus_deg", "inversion_efficiency"))
        self.protocols = [p.with_(refocus_deg=alpha0) if c in self.alpha_of else p for c, p in enumerate(protocols)]
        self.protocols = [p.with_(inversion_efficiency=kappa0) if c in self.kappa_of else p
                          for c, p in enumerate(self.protocols)]
        k, n_c = len(self.names), len(protocols)
        self.n_tissue = 4 * k  # (ln T1, ln T2, ln PD, ln b) per tissue
        self.n_params = self.n_tissue + n_c + len(self.alpha_of) + len(self.kappa_of)
        self.exam = slice(self.n_tissue, self.n_params)
        wm_gm = forward_signals(np.array([tissue_values(n, field_t).t1_ms for n in ("WM", "GM")]),
                                np.array([tissue_values(n, field_t).t2_ms for n in ("WM", "GM")]),
                                np.array([tissue_values(n, field_t).pd for n in ("WM", "GM")]),
                                self.protocols, config.forward)
        snr = np.broadcast_to(np.asarray(config.snr, np.float64), (n_c,))
        self.sigma = wm_gm.mean(axis=1) / snr  # (C,) noise sd per voxel

    def prior_sd(self) -> np.ndarray:
        """(P,) prior sd of every parameter (ln units for T1, T2, PD, b, g; deg for α; 1 for κ)."""
        sd = np.empty(self.n_params)
        log_sd = {k: math.log(hi / lo) / _SQRT12 for k, (lo, hi) in self.prior.items()}
        rel, pd_rel, csf_t1, csf_pd = (log_sd[k] for k in ("relaxation_factor", "pd_factor", "csf_t1_ms", "csf_pd"))
        for k, csf in enumerate(self.is_csf):
            sd[4 * k:4 * k + 4] = (csf_t1 if csf else rel, rel, csf_pd if csf else pd_rel, self.config.bias_sd)
        n_c = len(self.protocols)
        sd[self.n_tissue:self.n_tissue + n_c] = _GAIN_SD
        sd[self.n_tissue + n_c:self.n_tissue + n_c + len(self.alpha_of)] = _uniform_sd(*self.prior["refocus_deg"])
        sd[self.n_tissue + n_c + len(self.alpha_of):] = _uniform_sd(*self.prior["inversion_efficiency"])
        return np.maximum(sd, 1e-9)  # a zero bias sd: known exactly

    def signals(self, protocols: Sequence[Protocol] | None = None, t1: np.ndarray | None = None,
                t2: np.ndarray | None = None) -> np.ndarray:
        """(C, K) signals at the linearisation point (gains 1, bias 1), optionally with other maps/protocols."""
        return forward_signals(self.t1 if t1 is None else t1, self.t2 if t2 is None else t2, self.pd,
                               self.protocols if protocols is None else protocols, self.config.forward)

    def jacobian(self) -> np.ndarray:
        """(C, K, P) derivatives of s_kc with respect to every parameter, at the linearisation point."""
        s = self.signals()
        n_c, k = s.shape
        jac = np.zeros((n_c, k, self.n_params))
        h = 1e-3  # relative step of T1, T2: float32 EPG rounding (6e-8) / h stays below 1e-4
        d_t1 = (self.signals(t1=self.t1 * math.exp(h)) - self.signals(t1=self.t1 * math.exp(-h))) / (2 * h)
        d_t2 = (self.signals(t2=self.t2 * math.exp(h)) - self.signals(t2=self.t2 * math.exp(-h))) / (2 * h)
        for i in range(k):
            jac[:, i, 4 * i] = d_t1[:, i]
            jac[:, i, 4 * i + 1] = d_t2[:, i]
            jac[:, i, 4 * i + 2] = s[:, i]  # d s / d ln PD = s
            jac[:, i, 4 * i + 3] = s[:, i]  # d s / d ln b = s
        for c in range(n_c):
            jac[c, :, self.n_tissue + c] = s[c]  # d s / d ln g_c = s
        col = self.n_tissue + n_c
        for c in self.alpha_of:
            jac[c, :, col] = self._protocol_derivative(c, "refocus_deg", 0.5, (0.0, 180.0))
            col += 1
        for c in self.kappa_of:
            jac[c, :, col] = self._protocol_derivative(c, "inversion_efficiency", 0.002, (0.0, 1.0))
            col += 1
        return jac

    def _protocol_derivative(self, c: int, name: str, step: float, limits: tuple[float, float]) -> np.ndarray:
        # Central difference inside the limits, one-sided at a limit (180°, κ = 1): O(step) there, still < 1 %.
        p = self.protocols[c]
        x = getattr(p, name)
        lo, hi = max(x - step, limits[0]), min(x + step, limits[1])
        up = self.signals([p.with_(**{name: hi})])[0]
        down = self.signals([p.with_(**{name: lo})])[0]
        return (up - down) / (hi - lo)


# ---------------------------------------------------------------------------------------------- bounds
def _posterior(info: np.ndarray, prior_sd: np.ndarray) -> np.ndarray:
    return np.linalg.inv(info + np.diag(1.0 / prior_sd ** 2))


def _exam_information(model: _Model, jac: np.ndarray, n_voxels: int) -> np.ndarray:
    weighted = jac / model.sigma[:, None, None]  # (C, K, P)
    flat = weighted.reshape(-1, model.n_params)
    return n_voxels * flat.T @ flat


def _voxel_covariance(model: _Model, jac: np.ndarray, info: np.ndarray, prior_sd: np.ndarray, k: int
                      ) -> np.ndarray:
    """(4, 4) posterior covariance of one voxel's (ln T1, ln T2, ln PD, ln b) in tissue k.

    The voxel joins the exam as a tissue of its own: its four parameters are drawn independently from tissue
    k's prior and seen once (one measurement per contrast); the exam parameters are informed by every
    tissue's data, and each prior enters once.
    """
    p = model.n_params
    own = np.arange(4 * k, 4 * k + 4)
    full = np.zeros((p + 4, p + 4))
    full[:p, :p] = info
    j = np.zeros((len(model.protocols), p + 4))
    j[:, p:] = jac[:, k, own]  # the voxel's own parameters act as tissue k's do
    j[:, model.exam] = jac[:, k, model.exam]
    j /= model.sigma[:, None]
    full += j.T @ j
    sd = np.r_[prior_sd, prior_sd[own]]
    return _posterior(full, sd)[p:, p:]


def _limited_by(ratio: float) -> str:
    return "prior" if ratio > 0.8 else ("data" if ratio < 0.5 else "both")


def bounds(protocols: Sequence[Protocol], config: BoundsConfig | None = None) -> BoundsResult:
    """Best achievable precision of T1, T2, PD per tissue for an exam of ``protocols`` (module docstring).

    Parameters
    ----------
    protocols : the exam's contrasts (usually T1w, T2w, FLAIR), all at one field strength.
    config : tissues, SNR, unknowns; defaults as :class:`BoundsConfig`.

    Returns
    -------
    BoundsResult ; relative sds are 100 x the sd of the parameter's logarithm [%].
    """
    config = BoundsConfig() if config is None else config
    protocols = tuple(protocols)
    if not protocols or not all(isinstance(p, Protocol) for p in protocols):
        raise TypeError(f"bounds: protocols must be a non-empty sequence of Protocol; got {protocols!r}")
    if len({p.field_t for p in protocols}) != 1:
        raise ValueError(f"bounds: all protocols must share one field_t; got {[p.field_t for p in protocols]}")
    if not isinstance(config.snr, float) and len(config.snr) != len(protocols):
        raise ValueError(f"BoundsConfig.snr has {len(config.snr)} values for {len(protocols)} protocols")
    model = _Model(protocols, config)
    jac = model.jacobian()
    prior_sd = model.prior_sd()
    info = _exam_information(model, jac, config.n_voxels)
    cov = _posterior(info, prior_sd)
    eig = np.linalg.eigvalsh(info)  # the data's information alone: zero along what they cannot see
    n_unidentified = int((eig < 1e-10 * eig.max()).sum())
    s = model.signals()
    tissues = []
    for k, name in enumerate(model.names):
        voxel = _voxel_covariance(model, jac, info, prior_sd, k)
        prior = {m: 100 * prior_sd[4 * k + i] for i, m in enumerate(_MAPS)}
        mean = {m: 100 * math.sqrt(cov[4 * k + i, 4 * k + i]) for i, m in enumerate(_MAPS)}
        vox = {m: 100 * math.sqrt(voxel[i, i]) for i, m in enumerate(_MAPS)}
        ratio = {m: mean[m] / prior[m] for m in _MAPS}
        flags = tuple(f"{protocols[c].name or protocols[c].kind}: signal within 3 sigma of the inversion null "
                      f"(two T1 solutions; the T1 bound is local)" for c, p in enumerate(protocols)
                      if p.kind in _IR_KINDS and s[c, k] < 3 * model.sigma[c])
        tissues.append(TissueBound(name, {"t1_ms": float(model.t1[k]), "t2_ms": float(model.t2[k]),
                                          "pd": float(model.pd[k])}, prior, mean, vox, ratio,
                                   {m: _limited_by(ratio[m]) for m in _MAPS}, flags))
    return BoundsResult(tuple(tissues), tuple(_protocol_dict(p) for p in protocols), _config_dict(config),
                        _exam_sd(model, protocols, cov), n_unidentified)


def _exam_sd(model: _Model, protocols: Sequence[Protocol], cov: np.ndarray) -> dict[str, float]:
    names = [f"ln_gain[{p.name or c}]" for c, p in enumerate(protocols)]
    names += [f"refocus_deg[{protocols[c].name or c}]" for c in model.alpha_of]
    names += [f"inversion_efficiency[{protocols[c].name or c}]" for c in model.kappa_of]
    diag = np.sqrt(np.diag(cov)[model.exam])
    return {n: float(v) for n, v in zip(names, diag)}


def _protocol_dict(p: Protocol) -> dict[str, Any]:
    return {k: v for k, v in vars(p).items()}


def _config_dict(config: BoundsConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()} | {
        "prior": {k: list(v) for k, v in (PRIOR | config.prior).items()}}


# ---------------------------------------------------------------------------------------------- protocol advice
def candidate_contrasts(protocols: Sequence[Protocol]) -> dict[str, Protocol]:
    """One extra contrast of each family a scanner can add, derived from the exam's own protocols.

    - ``second T1w TR``: the T1-weighted series (the first spin-echo one with TR < 1500 ms) at 2.5 x its TR;
    - ``PD-weighted first echo``: the T2-weighted turbo spin echo's train read at its first echo (TE = esp);
    - ``second FLAIR TI``: the FLAIR at 0.6 x its TI (CSF no longer nulled, so its T1 is seen twice).
    Families the exam lacks a parent for are left out.
    """
    out: dict[str, Protocol] = {}
    t1w = next((p for p in protocols if p.kind in ("se", "tse") and p.tr_ms < 1500.0), None)
    t2w = next((p for p in protocols if p.kind in ("se", "tse") and p.tr_ms >= 2000.0 and p.te_ms >= 60.0), None)
    flair = next((p for p in protocols if p.kind == "ir_tse"), None)
    if t1w is not None:
        out["second T1w TR"] = t1w.with_(tr_ms=2.5 * t1w.tr_ms, name="t1w_long_tr")
    if t2w is not None:
        esp = t2w.esp_ms if t2w.kind == "tse" else 10.0
        out["PD-weighted first echo"] = t2w.with_(te_ms=esp, esp_ms=esp, name="pdw_first_echo")
    if flair is not None:
        out["second FLAIR TI"] = flair.with_(ti_ms=0.6 * flair.ti_ms, name="flair_short_ti")
    return out


@dataclass(frozen=True)
class Advice:
    """For one map, the extra contrast that tightens the parenchyma tissue-mean bound most."""

    map: str
    contrast: str
    before_pct: float  # mean over parenchyma tissues of the tissue-mean bound [%]
    after_pct: float
    line: str = field(default="")


def advise(protocols: Sequence[Protocol], config: BoundsConfig | None = None,
           candidates: dict[str, Protocol] | None = None) -> list[Advice]:
    """Which one extra contrast would tighten each map's bound most (parenchyma: all tissues but CSF).

    Returns one :class:`Advice` per map (T1, T2, PD) with a line a physicist can act on.
    """
    config = BoundsConfig() if config is None else config
    candidates = candidate_contrasts(protocols) if candidates is None else candidates
    extended = config  # with one SNR per protocol, the extra contrast gets their mean
    if not isinstance(config.snr, float):
        extended = _with_snr(config, tuple(config.snr) + (float(np.mean(config.snr)),))
    base = bounds(protocols, config)

    def parenchyma(res: BoundsResult, m: str) -> float:
        vals = [t.mean_pct[m] for t in res.tissues if t.tissue.upper() != "CSF"]
        return float(np.mean(vals)) if vals else float("nan")

    results = {}
    for name, extra in candidates.items():
        results[name] = bounds(tuple(protocols) + (extra,), extended)
    advice = []
    for m in _MAPS:
        before = parenchyma(base, m)
        if not results:
            advice.append(Advice(m, "", before, before, f"{m.upper()}: no candidate contrast"))
            continue
        best = min(results, key=lambda n: parenchyma(results[n], m))
        after = parenchyma(results[best], m)
        p = candidates[best]
        line = (f"{m.upper()}: add a {best} ({p.kind} TR {p.tr_ms:.0f} / TE {p.te_ms:.0f}"
                + (f" / TI {p.ti_ms:.0f}" if p.ti_ms else "") + f" ms): parenchyma tissue-mean bound "
                f"{before:.1f} % -> {after:.1f} %")
        advice.append(Advice(m, best, before, after, line))
    return advice


def _with_snr(config: BoundsConfig, snr: tuple[float, ...]) -> BoundsConfig:
    return BoundsConfig(**(vars(config) | {"snr": snr}))
