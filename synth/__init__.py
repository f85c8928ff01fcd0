"""relaxomap.synth — ground-truth maps and the training data made from them. Imports only ``physics``.

The rooms: :mod:`.phantom` (procedural head phantoms), :mod:`.augment` (augmentation of real maps) and
:mod:`.store` (the HDF5 training store, its parts, merging, torch Dataset and summary). Beside them, the
modules several rooms share: :mod:`.maps` (the Maps container), :mod:`.real` (map files), :mod:`.sources`
(subjects drawn from phantoms or real maps), :mod:`.lesions`, :mod:`.fields` (smooth random fields),
:mod:`.rates` (rate space, the partial-volume convention), :mod:`.texture` (the texture prior),
:mod:`.orientation` (axial slicing, head rotation), :mod:`.protocols`, :mod:`.artefacts`, :mod:`.normalize`,
:mod:`.generate` (training samples), :mod:`.bench` and :mod:`._alloc` (settings of generating processes).
"""
