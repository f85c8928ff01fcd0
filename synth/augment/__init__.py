"""relaxomap.synth.augment — augmentations of labelled ground-truth maps (real BrainWeb subjects, or any Maps).

Every function takes the maps and an ``np.random.Generator`` and returns new Maps (inputs untouched). The rooms:
:mod:`.config` (AugmentConfig), :mod:`.warp` (flips and resampling through an affine map and a displacement
field), :mod:`.tissues` (per-tissue re-mapping of relaxation values) and :mod:`.pipeline` (augment_maps: all of
them, texture and lesions). Import from the modules; this package imports nothing.

Physical consistency
--------------------
All resampling and blending happens on ``(PD, PD/T1, PD/T2)``, which is linear in tissue fractions
(:mod:`synth.rates`): a resampled or blended voxel is a physical mixture of its neighbours' tissues.

Per-tissue relaxation perturbation (:func:`.tissues.perturb_tissues`) re-maps each tissue's values with a per-subject
factor. BrainWeb maps hold one value per tissue — without this the network could learn a label lookup — and
subject 47 has 22 % partial-volume brain voxels that must stay consistent mixtures. Each voxel is therefore
decomposed as ``v ≈ f·v_l + (1 − f)·v_m``: ``v_l`` the reference (median) value of its own label, ``v_m``
that of the best-fitting second label (or zero: bone, air), ``f`` by least squares in relative units; pure
voxels are the case f = 1. The new voxel is ``(v / fit) ⊙ (f·v'_l + (1 − f)·v'_m)``: the mixture re-built from
the perturbed tissue values ``v'`` times the voxel's own deviation from the fit (texture, or a third tissue),
so a two-tissue mixture is re-mixed exactly with its fraction unchanged. The same machinery converts maps
between field strengths (per-tissue ratios of the 1.5 T and 3 T tables).
"""
