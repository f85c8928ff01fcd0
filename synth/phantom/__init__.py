"""relaxomap.synth.phantom — procedural 3-D head phantoms: random anatomy, per-subject tissue values, partial
volume.

A phantom is an axial slab through a head. Every voxel centre is mapped into a canonical head frame by a random
pose and a smooth displacement field; tissues are signed distances in that frame: cerebrum with a shaped floor,
cortical folding, fissures, cerebellum with folia, brainstem and cord; lateral and third ventricles; deep grey
nuclei (label 13); cranial cavity with subarachnoid CSF, dura, superior sagittal sinus, skull (tables and
diploë), galea, temporalis, scalp fat and skin; below the skull base a face / neck with muscle, fat, orbits,
eyes and air sinuses. Thicknesses, cortical thickness, sulcal depth and width and atrophy (wider sulci, larger
ventricles) vary smoothly and per subject. Eyes carry label 1 (vitreous has CSF-like relaxation) but lie outside
the brain mask.

The rooms: :mod:`.config` (PhantomConfig: the settings and their defaults), :mod:`.build` (make_phantom: the
three steps), :mod:`.frame` (canonical head coordinates, index boxes), :mod:`.shapes` (signed-distance shapes,
ramps, smooth steps), :mod:`.thickness` (positive smooth fields), :mod:`.brain`, :mod:`.deep` and :mod:`.head`
(the anatomy and its fused kernels), :mod:`.slots` (the tissue slots of the fraction stack) and
:mod:`.tissue_mix` (per-subject values and partial-volume mixing). Lesions are not a phantom concern: they are
inserted into any map set (:mod:`relaxomap.synth.lesions`).

Import from the modules (``from relaxomap.synth.phantom.build import make_phantom``); this package imports
nothing, so that reading a config does not compile kernels.
"""
