"""relaxomap.synth — ground-truth map sources, randomized protocols, artefacts, the HDF5 training store
and its torch Dataset. Imports only ``physics``."""
