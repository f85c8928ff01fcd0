"""Training samples from ground-truth maps: draw a subject, pick axial slices, draw protocols and artefacts,
render with MR physics, normalise.

Determinism: every random choice comes from a seed derived from ``(SynthConfig.seed, subject_index, slot)``
with :class:`numpy.random.SeedSequence`, so ``generate_subject(config, i)`` returns identical arrays in any
process, whatever the number of workers or shards. Seed keys: subject maps ``(0, i)``, slice choice ``(1, i)``,
sample ``(2, i, slot)``; the sample seed is stored with each sample.

Image geometry: slices are axial planes ``maps[:, :, z]`` of the (X, Y, Z) maps (x left→right, y
posterior→anterior, z inferior→superior, as in ``../shared/data``), shown with rows = y descending
(anterior at the top) and columns = x ascending, then zero-padded / centre-cropped to ``image_size``.
No resampling: the in-plane voxel size is the maps' own (1 mm for the BrainWeb-based sources).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range, check_sequence, config_from_dict
from relaxomap.physics.forward import FORWARD_MODELS, render
from relaxomap.physics.protocol import CONTRASTS, Protocol, pack_protocols
from relaxomap.synth.artefacts import ArtefactConfig, apply_artefacts, sample_artefacts
from relaxomap.synth.maps import Maps
from relaxomap.synth.normalize import normalize_intensity
from relaxomap.synth.protocols import ProtocolRanges, sample_protocols
from relaxomap.synth.sources import SourceConfig, draw_subject

__all__ = ["SynthConfig", "generate_subject", "render_signal", "derive_seed", "FORWARD_MODELS", "fit_to_size"]


def derive_seed(entropy: int, *key: int) -> int:
    """A non-negative int64 seed from ``entropy`` and an integer key path (SeedSequence spawn key)."""
    state = np.random.SeedSequence(int(entropy), spawn_key=tuple(int(k) for k in key)).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic training set (with ``n_samples``, the only inputs of the store).

    Parameters
    ----------
    source : where ground-truth maps come from (phantom or real maps; ``source.healthy_only`` disables lesions).
    protocols : allowed protocol kinds and ranges per contrast.
    artefacts : SNR, bias field, gain and k-space truncation ranges.
    forward : ``"closed"`` (closed-form signal equations) or ``"epg"`` (extended phase graphs for spin-echo
        kinds: stimulated echoes at refocusing angles < 180°).
    image_size : (H, W) of every sample [voxels]; axial slices are centre-padded / cropped.
    slices_per_subject : samples drawn from each subject (each with its own protocols and artefacts). Drawing
        a 1 mm procedural head (224 × 256 × 48) costs ~0.25 s, about 100x one sample once the head exists, so
        every slice of it is used: the default 48 is the default slab's depth (on average ~43 of its 48 slices
        pass ``min_brain_fraction``; the rest of the 48 samples repeat eligible slices with new protocols and
        artefacts). A subject's slices go to one split.
    min_brain_fraction : a slice is eligible when its brain area is at least this fraction of the subject's
        largest axial brain area.
    missing_probability : per contrast (t1w, t2w, flair), probability that the contrast is absent (input zeros,
        ``present`` 0); at least one contrast is always kept.
    seed : master seed.
    """

    source: SourceConfig = field(default_factory=SourceConfig)
    protocols: ProtocolRanges = field(default_factory=ProtocolRanges)
    artefacts: ArtefactConfig = field(default_factory=ArtefactConfig)
    forward: str = "closed"
    image_size: tuple[int, int] = (256, 256)
    slices_per_subject: int = 48
    min_brain_fraction: float = 0.3
    missing_probability: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seed: int = 0

    def __post_init__(self) -> None:
        own = "SynthConfig"
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        for name, cls in (("source", SourceConfig), ("protocols", ProtocolRanges), ("artefacts", ArtefactConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                set_(name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise TypeError(f"{own}.{name} must be a {cls.__name__}; got {type(value).__name__}")
        if self.forward not in FORWARD_MODELS:
            raise ValueError(f"{own}.forward must be one of {list(FORWARD_MODELS)}; got {self.forward!r}")
        set_("image_size", check_sequence(own, "image_size", self.image_size, 16, 2048, length=2, integer=True))
        set_("slices_per_subject", check_int_range(own, "slices_per_subject", self.slices_per_subject, 1, 4096))
        set_("min_brain_fraction", check_finite_range(own, "min_brain_fraction", self.min_brain_fraction, 0.0, 1.0))
        # one probability per contrast, in CONTRASTS order (t1w, t2w, flair)
        set_("missing_probability", check_sequence(own, "missing_probability", self.missing_probability, 0.0, 1.0,
                                                   length=len(CONTRASTS)))
        set_("seed", check_int_range(own, "seed", self.seed, 0, 2**63 - 1))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = v.to_dict() if hasattr(v, "to_dict") else (list(v) if isinstance(v, tuple) else v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        return config_from_dict(cls, d)  # __post_init__ builds source / protocols / artefacts from their dicts

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SynthConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "SynthConfig":
        return dataclasses.replace(self, **changes)


def _fit_slices(shape: tuple[int, ...], size: tuple[int, int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(source, destination) index of the centre pad / crop of the last two axes from ``shape`` to ``size``."""
    src, dst = [], []
    for n_in, n_out in zip(shape[-2:], size):
        if n_in >= n_out:
            start = (n_in - n_out) // 2
            src.append(slice(start, start + n_out))
            dst.append(slice(0, n_out))
        else:
            start = (n_out - n_in) // 2
            src.append(slice(0, n_in))
            dst.append(slice(start, start + n_in))
    return (..., *src), (..., *dst)


def fit_to_size(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-pad with zeros / centre-crop the last two axes of ``a`` to ``size`` (H, W)."""
    out = np.zeros(a.shape[:-2] + tuple(size), a.dtype)
    src, dst = _fit_slices(a.shape, size)
    out[dst] = a[src]
    return out


#: Bytes of one gathered (x block, Y, slices) block in :func:`_axial_stack`: it is transposed in L2 cache.
_BLOCK_BYTES = 1 << 18


def _axial_stack(maps: Maps, zs: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axial slices ``zs`` of maps, labels and mask fitted to ``size``: ``fit_to_size(axial_image(v, z), size)``
    (the rule of :mod:`relaxomap.synth.orientation`, computed blockwise).

    Returns
    -------
    targets : (S, 3, H, W) float32 [T1 ms, T2 ms, PD]; labels : (S, H, W) uint8; mask : (S, H, W) bool.

    One axial plane of an (X, Y, Z) volume with z fastest is a strided gather that touches a cache line per
    voxel, so the volume is read once for all slices instead: in blocks of x whose gathered (bx, Y, S) block is
    turned to image orientation in cache (32 slices of a 224 x 256 x 48 head to 256 x 256: 0.45 ms per slice,
    against 0.68 ms slice by slice).
    """
    x_n, y_n = maps.t1_ms.shape[:2]
    src, dst = _fit_slices((y_n, x_n), size)
    n = len(zs)
    targets = np.zeros((n, 3, *size), np.float32)
    labels = np.zeros((n, *size), np.uint8)
    mask = np.zeros((n, *size), bool)
    every = (slice(None),)
    for out, vol in zip((targets[:, 0], targets[:, 1], targets[:, 2], labels, mask),
                        (maps.t1_ms, maps.t2_ms, maps.pd, maps.labels, maps.mask)):
        stack = np.empty((n, y_n, x_n), vol.dtype)  # (S, Y, X), y ascending
        bx = max(1, _BLOCK_BYTES // max(1, y_n * n * vol.itemsize))
        for x0 in range(0, x_n, bx):
            stack[:, :, x0:x0 + bx] = np.take(vol[x0:x0 + bx], zs, axis=2).transpose(2, 1, 0)  # (bx, Y, S)
        out[every + dst[1:]] = stack[:, ::-1][every + src[1:]]  # rows = y descending
    return targets, labels, mask


def render_signal(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, protocols: tuple[Protocol, ...],
                  forward: str = "closed") -> np.ndarray:
    """Noise-free signals of the given protocols, computed on voxels with pd > 0 only.

    Parameters
    ----------
    t1_ms, t2_ms : (H, W) float32 [ms]; pd : (H, W) float32 (relative, 0 = background).
    protocols : one Protocol per output channel.
    forward : ``"closed"`` or ``"epg"`` (:func:`physics.forward.render`: EPG for the spin-echo kinds, closed
        form for spgr/mprage).

    Returns
    -------
    (len(protocols), H, W) float32 signal [M0 units], 0 where pd = 0.
    """
    fg = np.flatnonzero(pd.ravel() > 0)
    out = np.zeros((len(protocols), pd.size), np.float32)
    if fg.size:
        t1, t2, p = (np.ascontiguousarray(m.ravel()[fg]) for m in (t1_ms, t2_ms, pd))
        sig = render(t1, t2, p, list(protocols), forward=forward)  # (len(protocols), n_fg)
        for c in range(len(protocols)):  # row by row: 3x faster than out[:, fg] = sig at 256 x 256
            out[c, fg] = sig[c]
    return out.reshape((len(protocols), *pd.shape))


def _choose_slices(maps: Maps, config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    area = maps.mask.sum(axis=(0, 1))  # (Z,) brain voxels per axial slice
    if area.max() == 0:
        raise ValueError(f"subject {maps.subject_id!r} (source {maps.source}) has an empty brain mask")
    eligible = np.flatnonzero(area >= config.min_brain_fraction * area.max())
    n = config.slices_per_subject
    chosen = rng.choice(eligible, size=min(n, eligible.size), replace=False)
    if n > eligible.size:  # fewer eligible slices than samples: repeat slices (each with new protocols)
        chosen = np.concatenate([chosen, rng.choice(eligible, size=n - eligible.size, replace=True)])
    return chosen


def generate_subject(config: SynthConfig, subject_index: int, n_samples: int | None = None) -> list[dict[str, Any]]:
    """The samples of one subject.

    Parameters
    ----------
    config : the generator configuration.
    subject_index : index of the subject in the store (0-based); with ``config.seed`` it fixes everything.
    n_samples : return only the first ``n_samples`` of the ``config.slices_per_subject`` samples (the last
        subject of a store may be cut short); sample k is the same whatever ``n_samples``.

    Returns
    -------
    list of dicts, one per sample, with
        ``inputs`` (3, H, W) float32 normalised images (t1w, t2w, flair; zeros where absent),
        ``targets`` (3, H, W) float32 [T1 ms, T2 ms, PD relative],
        ``params`` (3, 3) float32 [TR, TE, TI] ms per contrast (TI = 0 without inversion),
        ``protocols`` (3, 10) float64 :func:`physics.protocol.pack_protocols` rows,
        ``present`` (3,) uint8, ``mask`` (H, W) bool brain mask, ``labels`` (H, W) uint8,
        ``snr`` (3,) float32, ``scale`` (3,) float32 normalisation divisors (0 where absent),
        ``seed`` int, ``subject_index`` int, ``slice_index`` int, ``field_t`` float, ``subject_id`` str,
        ``source`` str. ``targets``, ``mask`` and ``labels`` are views of one (n_samples, ...) array each, sliced
        for all samples at once (copy them to keep a few samples without the rest).
    """
    s = config.slices_per_subject if n_samples is None else int(n_samples)
    if not 0 <= s <= config.slices_per_subject:
        raise ValueError(f"generate_subject: n_samples must be in [0, slices_per_subject="
                         f"{config.slices_per_subject}]; got {n_samples}")
    maps = draw_subject(config.source, derive_seed(config.seed, 0, subject_index))
    if maps.t1_ms.ndim != 3:
        raise ValueError(f"generate_subject: maps of subject {maps.subject_id!r} must be 3-D (X, Y, Z); "
                         f"got shape {maps.shape}")
    slices = _choose_slices(maps, config, np.random.default_rng(derive_seed(config.seed, 1, subject_index)))
    all_targets, all_labels, all_masks = _axial_stack(maps, slices[:s], config.image_size)  # (s, 3, H, W), ...
    samples = []
    for slot in range(s):
        z = int(slices[slot])
        targets, labels, mask = all_targets[slot], all_labels[slot], all_masks[slot]
        t1, t2, pd = targets  # (H, W) views, read only below
        seed = derive_seed(config.seed, 2, subject_index, slot)
        rng = np.random.default_rng(seed)
        protocols = sample_protocols(rng, config.protocols, maps.field_t)
        art = sample_artefacts(rng, config.artefacts, len(CONTRASTS))
        present = rng.random(len(CONTRASTS)) >= np.asarray(config.missing_probability)
        if not present.any():
            present[int(rng.integers(len(CONTRASTS)))] = True
        clean = render_signal(t1, t2, pd, protocols, config.forward)
        images = apply_artefacts(clean, mask, art)
        if not np.isfinite(images).all():
            raise ValueError(f"non-finite image rendered for subject {maps.subject_id!r} slice {z} with protocols "
                             f"{[p.name for p in protocols]}")
        inputs = np.zeros_like(images)
        scale = np.zeros(len(CONTRASTS), np.float32)
        for c in np.flatnonzero(present):
            inputs[c], scale[c] = normalize_intensity(images[c])
        samples.append({
            "inputs": inputs,
            "targets": targets,
            "params": np.array([[p.tr_ms, p.te_ms, p.ti_ms] for p in protocols], np.float32),
            "protocols": pack_protocols(protocols),
            "present": present.astype(np.uint8),
            "mask": mask,
            "labels": labels,
            "snr": art.snr.astype(np.float32),
            "scale": scale,
            "seed": seed,
            "subject_index": int(subject_index),
            "slice_index": z,
            "field_t": float(maps.field_t),
            "subject_id": str(maps.subject_id),
            "source": str(maps.source),
        })
    return samples
