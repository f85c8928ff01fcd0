"""relaxomap.train — training, and everything that uses a trained network.

The training core lives here: :mod:`~relaxomap.train.config` (``TrainConfig``), :mod:`~relaxomap.train.trainer`,
:mod:`~relaxomap.train.schedule`, :mod:`~relaxomap.train.losses`, :mod:`~relaxomap.train.distributed`,
:mod:`~relaxomap.train.checkpoint` and :mod:`~relaxomap.train.bench` (the training benchmark). The rooms:

- :mod:`relaxomap.train.clinical` — prediction on clinical NIfTI / DICOM files, rendering, the demo and the
  shipped default model;
- :mod:`relaxomap.train.evaluation` — metrics, side-by-side evaluation on synth stores, its report and figures;
- :mod:`relaxomap.train.experiment` — the ablation experiment from nothing to a results page;
- :mod:`relaxomap.train.cli` — the ``relaxomap`` command line (imported by nothing else in the package).
"""
