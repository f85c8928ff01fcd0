"""synth._alloc: what it sets (glibc's mmap and trim thresholds, the GC freeze) and that generation results do not
depend on it. How many page faults glibc then saves is the allocator's behaviour, measured in docs/benchmarks.md,
not tested here."""
from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from relaxomap.synth import _alloc
from tests.conftest import REPO


class _FakeLibc:
    """Stands in for libc: records mallopt calls and answers ``result`` (glibc returns 1 on success, 0 on error)."""

    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []

        def mallopt(param: int, value: int) -> int:  # a function, which can carry argtypes like a ctypes one
            self.calls.append((param, value))
            return result

        self.mallopt = mallopt


def _use_libc(monkeypatch: pytest.MonkeyPatch, libc: object) -> None:
    monkeypatch.setattr(_alloc.sys, "platform", "linux")
    monkeypatch.setattr(_alloc.ctypes, "CDLL", lambda name: libc)


def test_keep_freed_memory_raises_both_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    _use_libc(monkeypatch, libc)
    assert _alloc.keep_freed_memory() is True
    # M_MMAP_THRESHOLD (-3): blocks up to 1 GiB from the heap; M_TRIM_THRESHOLD (-1): -1 = never trim
    assert libc.calls == [(-3, 1 << 30), (-1, -1)]
    assert libc.mallopt.argtypes == (ctypes.c_int, ctypes.c_int)


def test_keep_freed_memory_reports_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_libc(monkeypatch, _FakeLibc(result=0))
    assert _alloc.keep_freed_memory() is False  # mallopt refused the setting

    def no_libc(name: str) -> None:
        raise OSError("no libc")

    monkeypatch.setattr(_alloc.ctypes, "CDLL", no_libc)
    assert _alloc.keep_freed_memory() is False
    monkeypatch.setattr(_alloc.ctypes, "CDLL", lambda name: object())  # a libc without mallopt (musl)
    assert _alloc.keep_freed_memory() is False
    libc = _FakeLibc()
    monkeypatch.setattr(_alloc.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(_alloc.sys, "platform", "darwin")
    assert _alloc.keep_freed_memory() is False and libc.calls == []  # not Linux: nothing is called


def test_generation_process_freezes_what_exists() -> None:
    probe = ("import gc; from relaxomap.synth._alloc import prepare_generation_process; n = len(gc.get_objects()); "
             "prepare_generation_process(); print(n, gc.get_freeze_count(), len(gc.get_objects()))")
    n, frozen, left = map(int, subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True,
                                              capture_output=True, text=True).stdout.split())
    assert frozen >= 0.9 * n and left < 0.1 * n  # the module objects left the collector's generations


_GENERATE = """
import hashlib, sys
from relaxomap.synth._alloc import prepare_generation_process
if sys.argv[1] == "1":
    prepare_generation_process()  # as a generating worker does
from relaxomap.synth.generate import SynthConfig, generate_subject
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.sources import SourceConfig
source = SourceConfig(phantom=PhantomConfig(shape=(64, 72, 8), voxel_mm=(3.5, 3.5, 3.5)))
config = SynthConfig(source=source, image_size=(64, 64), slices_per_subject=2, seed=5)
h = hashlib.sha256()
for subject in range(3):
    for sample in generate_subject(config, subject):
        for name in ("inputs", "targets", "mask", "labels", "protocols"):
            h.update(sample[name].tobytes())
print(h.hexdigest())
"""


def test_generation_is_identical_with_and_without_the_settings() -> None:
    digests = [subprocess.run([sys.executable, "-c", _GENERATE, flag], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.split()[-1] for flag in ("0", "1")]
    assert len(digests[0]) == 64 and digests[0] == digests[1]
