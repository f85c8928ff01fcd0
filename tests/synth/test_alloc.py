"""synth._alloc: freed head-sized blocks are reused instead of being page-faulted in again."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

_PROBE = """
import resource, sys
import numpy as np
from relaxomap.synth._alloc import keep_freed_memory
on = keep_freed_memory() if sys.argv[1] == "1" else False
a = np.ones(64 * 2**20 // 8); del a          # a 64 MiB block, touched and freed
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(64 * 2**20 // 8)                 # the same size again
print(int(on), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_blocks_are_reused() -> None:
    faults = {}
    for flag in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", _PROBE, flag], cwd=REPO, check=True, capture_output=True,
                             text=True).stdout.split()
        faults[flag] = int(out[1])
        if flag == "1" and out[0] != "1":
            pytest.skip("not glibc: keep_freed_memory is a no-op")
    pages = 64 * 2**20 // 4096
    # default glibc: a fresh mmap faulted in again (every 4 kB page, or every 2 MB one with transparent huge
    # pages: here ~540 faults); with the setting the freed heap block is reused: almost no faults.
    assert faults["1"] < faults["0"]
    assert faults["1"] < 0.05 * pages


def test_generation_process_freezes_what_exists() -> None:
    probe = ("import gc; from relaxomap.synth._alloc import prepare_generation_process; n = len(gc.get_objects()); "
             "prepare_generation_process(); print(n, gc.get_freeze_count(), len(gc.get_objects()))")
    n, frozen, left = map(int, subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True,
                                              capture_output=True, text=True).stdout.split())
    assert frozen >= 0.9 * n and left < 0.1 * n  # the module objects left the collector's generations
