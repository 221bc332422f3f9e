"""darkconv/cli/process.py: the command keeps freed tensor memory mapped (glibc), and leaves the
allocator alone where the user tunes it or opts out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import torch
from darkconv.cli.process import keep_freed_memory
print(keep_freed_memory())
torch.set_num_threads(1)
faults = []
for _ in range(6):  # two large activations alive at once, then freed, as in one forward
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x, y, z = (torch.ones(5 * 2**20) for _ in range(3))  # 20 MiB each
    del x, y, z
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[2:]))
"""


def _run(**env: str) -> tuple[str, int]:
    full = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES")}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=full, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_stays_mapped() -> None:
    applied, faults = _run()
    if applied != "True":
        pytest.skip("not glibc (no mallopt)")
    # glibc's default trims the freed 60 MiB at the top of the heap (more than twice its
    # adapted 20 MiB mmap threshold) each time, so every iteration faults its ~15,000 pages in
    # again (~61,000 here); kept mapped, at most one iteration's growth (~5,000 here)
    off, faults_off = _run(DARKCONV_KEEP_MEMORY="0")
    assert off == "False" and faults_off > 40_000, faults_off
    assert faults < faults_off / 4, (faults, faults_off)
    user, _ = _run(MALLOC_TRIM_THRESHOLD_="1000000")
    assert user == "False"  # the user's own allocator settings win
