"""relaxomap.model — the parameter-embedded U-Net and its baselines. Imports only ``physics`` and ``synth``."""
