"""relaxomap — quantitative T1 (ms), T2 (ms) and PD maps from clinical T1w / T2w / T2-FLAIR MRI.

The package root holds only what every layer shares; the layers are its subpackages, each importing only
the layers above it in this list (checked by ``tests/test_layers.py``):

- :mod:`relaxomap.physics` — sequence protocols, signal equations, EPG and Bloch simulators, fidelity.
- :mod:`relaxomap.synth` — ground-truth map sources, randomized protocols, artefacts, the training store.
- :mod:`relaxomap.model` — the parameter-embedded U-Net and its baselines.
- :mod:`relaxomap.train` — losses and trainer, evaluation, prediction on clinical files, the CLI.

In the source tree the four layers are the top-level folders ``physics/``, ``synth/``, ``model/`` and
``train/``; ``setup.cfg`` maps them to these names (``package_dir``), so nothing is installed under a bare
name such as ``model`` or ``train``.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version (``setup.cfg``), read once here; every provenance record uses it.
    __version__: str = version("relaxomap")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
