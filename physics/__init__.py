"""relaxomap.physics — MR physics: protocols, signal models, simulators and their references.

The lowest layer: it imports no other relaxomap layer (synth, model and train import it). Times in ms,
angles in degrees at the API (radians inside the kernels), field in tesla.

Modules
-------
Protocols, tissues, inputs
    ``protocol``        :class:`Protocol` (one acquired contrast), ``SEQUENCE_KINDS`` and their codes,
                        ``SPIN_ECHO_KINDS``, ``CONTRASTS``, clinical ``PRESETS``, ``pack_protocols`` tables.
    ``tissues``         literature T1 / T2 / PD of brain tissues at 1.5 T and 3 T.
    ``rf``              RF pulse shapes (``PulseShape``, sinc, rect) and the RF-spoiling phase schedule.
    ``checks``          input checks and config helpers shared by every layer (errors name field and value).
Forward models
    ``forward``         ``render(..., forward="closed"|"epg")``: the one place that picks the simulator that
                        turns maps into images (``FORWARD_MODELS``).
    ``signal``          closed-form steady-state signal equations: Numba float32 ``signal``, differentiable
                        torch twin, float64 ``signal_reference`` and the NumPy baseline ``signal_numpy``.
    ``_signal_kernel``  the Numba kernel of ``signal`` (threads, per-protocol constants).
    ``_fastexp``        float32 exp2 and subnormal flushing used by that kernel.
    ``epg``             extended phase graphs of spin-echo trains (Numba, steady state, B1, schedules).
    ``epg_dictionary``  ``EPGDictionary``: precomputed EPG table over (T1, T2), bilinear lookup.
    ``epg_numpy``       vectorised NumPy EPG: the benchmark baseline of the kernel.
Simulators and references (each reference is independent of its fast twin: neither imports the other)
    ``epg_reference``   float64 complex EPG of one voxel, its own input checks and timing.
    ``bloch``           isochromat Bloch simulator (hard / shaped pulses, ideal or RF spoiling).
    ``_bloch_kernel``   its Numba kernels (pulse propagators, the TR loop over an op table).
    ``bloch_reference`` float64 NumPy Bloch simulation of one voxel on its own event timeline.
Validation, bounds and benchmarks
    ``bounds``          what a set of protocols allows: linearised posterior sd of T1 / T2 / PD per tissue with
                        gains, receive field, refocusing angle and inversion efficiency marginalised; advice.
    ``fidelity``        closed form and textbook equations against EPG and Bloch, per tissue or T1 × T2 grid.
    ``fidelity_report`` a fidelity study's presets completed by field strength, its tables and its figure.
Physics-only estimation
    ``refine``          (subpackage) test-time refinement of a network's maps: the exam's own EPG dictionary,
                        the exam-level fit (gains, B1, refocusing angles, κ, receive fields) and the per-voxel
                        MAP look-up with both inversion-recovery branches (``predict --refine``).
    ``voxel_fit``       the NLLS baseline: voxel-wise fit of T1 / T2 / PD to one slice's three images with
                        per-contrast gains calibrated on the slice.
    ``voxel_solver``    its settings (``NLLSConfig``) and the bounded per-voxel Levenberg–Marquardt solver.
    ``bench``           throughput of the kernels beside their NumPy baselines (``relaxomap bench physics``).
"""
from __future__ import annotations

from relaxomap.physics.protocol import PRESETS, SEQUENCE_KINDS, Protocol, pack_protocols, preset

__all__ = ["Protocol", "PRESETS", "SEQUENCE_KINDS", "preset", "pack_protocols"]
