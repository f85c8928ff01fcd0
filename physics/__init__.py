"""relaxomap.physics — sequence protocols, closed-form signal equations (Numba + torch),
EPG and Bloch simulators, and fidelity validation. Imports no other relaxomap layer."""
from __future__ import annotations

from relaxomap.physics.protocol import PRESETS, SEQUENCE_KINDS, Protocol, pack_protocols, preset

__all__ = ["Protocol", "PRESETS", "SEQUENCE_KINDS", "preset", "pack_protocols"]
