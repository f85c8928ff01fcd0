"""The forward model: one place that decides which simulator turns T1 / T2 / PD maps into images.

Forward models (:data:`FORWARD_MODELS`, the ``forward`` keyword everywhere in the library)
-------------------------------------------------------------------------------------------
``"closed"``  the closed-form steady-state equations, :func:`physics.signal.signal` (``model="closed"``),
              for every sequence kind.
``"epg"``     extended phase graphs, :func:`physics.epg.epg_signal`, for the spin-echo kinds
              (:data:`physics.protocol.SPIN_ECHO_KINDS`: imperfect refocusing, stimulated echoes). ``spgr`` and
              ``mprage`` assume ideal spoiling, where EPG *is* the closed form, so the closed form renders them.

The ``forward`` choice is not the ``model`` keyword of :func:`physics.signal.signal`, which picks between two
closed forms (``"closed"`` and the ``"textbook"`` equations of the fidelity report).

Imports here stay light (NumPy and the protocol module): the simulators are imported on the first
:func:`render`, so importing this module compiles no kernel.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol

__all__ = ["FORWARD_MODELS", "check_forward", "effective_forward", "render"]

#: Accepted values of the ``forward`` keyword.
FORWARD_MODELS: tuple[str, ...] = ("closed", "epg")


def check_forward(forward: Any) -> str:
    """Return ``forward`` if it is one of :data:`FORWARD_MODELS`, else raise ValueError naming it."""
    if not isinstance(forward, str) or forward not in FORWARD_MODELS:
        raise ValueError(f"forward must be one of {list(FORWARD_MODELS)}; got {forward!r}")
    return forward


def effective_forward(protocol: Protocol, forward: str) -> str:
    """The simulator that :func:`render` uses for ``protocol`` under ``forward``: ``"epg"`` or ``"closed"``.

    ``"epg"`` only for a spin-echo kind under ``forward="epg"``; ``spgr`` / ``mprage`` are always ``"closed"``.
    """
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a physics.protocol.Protocol; got {type(protocol).__name__}")
    return "epg" if check_forward(forward) == "epg" and protocol.kind in SPIN_ECHO_KINDS else "closed"


def _protocol_list(protocols: Protocol | Sequence[Protocol]) -> list[Protocol]:
    """``protocols`` as a non-empty list of Protocols (TypeError / ValueError naming the argument)."""
    if isinstance(protocols, Protocol):
        return [protocols]
    if isinstance(protocols, (str, bytes)) or not isinstance(protocols, Sequence):
        raise TypeError(f"protocols must be a Protocol or a sequence of Protocols; got {type(protocols).__name__}")
    prots = list(protocols)
    if not prots:
        raise ValueError("protocols must hold at least one Protocol; got none")
    bad = [type(p).__name__ for p in prots if not isinstance(p, Protocol)]
    if bad:
        raise TypeError(f"protocols must hold only Protocol objects; got {bad[0]}")
    return prots


def render(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, protocols: Protocol | Sequence[Protocol], *,
           forward: str = "closed") -> np.ndarray:
    """Noise-free magnitude images of the maps under each protocol, with the chosen forward model.

    Parameters
    ----------
    t1_ms, t2_ms : (*S) [ms], NumPy arrays of any shape, finite and >= 0 (0 = background).
    pd : (*S) relative proton density (the signal is linear in it; M0 = PD).
    protocols : one :class:`~physics.protocol.Protocol` or a sequence of them (kinds may be mixed).
    forward : ``"closed"`` or ``"epg"`` (module docstring).

    Returns
    -------
    (n_protocols, *S) float32. Row ``i`` is exactly what :func:`physics.signal.signal` (``model="closed"``) or
    :func:`physics.epg.epg_signal` returns for ``protocols[i]`` alone (:func:`effective_forward` says which).

    Raises
    ------
    ValueError
        ``forward`` not in :data:`FORWARD_MODELS`, no protocols, maps with NaN / inf / negative values or of
        different shapes (from the simulators, naming the map).
    TypeError
        ``protocols`` not Protocol(s).
    """
    forward = check_forward(forward)
    prots = _protocol_list(protocols)
    from relaxomap.physics.signal import signal  # imported here: importing this module compiles no kernel

    epg_rows = [i for i, p in enumerate(prots) if forward == "epg" and p.kind in SPIN_ECHO_KINDS]
    if not epg_rows:
        return signal(t1_ms, t2_ms, pd, prots, model="closed")
    from relaxomap.physics.epg import epg_signal

    if len(epg_rows) == len(prots):
        return epg_signal(t1_ms, t2_ms, pd, prots)
    closed_rows = [i for i in range(len(prots)) if i not in epg_rows]
    epg_out = epg_signal(t1_ms, t2_ms, pd, [prots[i] for i in epg_rows])  # (n_epg, *S)
    closed_out = signal(t1_ms, t2_ms, pd, [prots[i] for i in closed_rows], model="closed")  # (n_closed, *S)
    out = np.empty((len(prots),) + epg_out.shape[1:], np.float32)
    out[epg_rows] = epg_out
    out[closed_rows] = closed_out
    return out
