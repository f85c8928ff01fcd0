"""relaxomap.train.clinical — a trained network on clinical files.

Reading NIfTI (+ BIDS sidecar) and DICOM series, resolving TR/TE/TI, resampling onto one grid, brain masks,
prediction of T1 [ms], T2 [ms] and PD maps (:mod:`~relaxomap.train.clinical.predict`), rendering images from
maps, the end-to-end demo, and the shipped checkpoint in ``default_model/`` (package data).
"""
