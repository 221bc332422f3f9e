"""Process-wide settings that the ``darkconv`` command makes for itself.

The library never changes process state; the command owns its process, so it may.

:func:`keep_freed_memory`: torch's CPU allocator hands every tensor back to ``malloc``, and
glibc returns a freed block of more than its (adaptive) ``mmap`` threshold to the kernel at once,
and trims the top of the heap once 2x that much is free there.  The next forward then takes a
page fault for every 4 KiB of its large activations: 10-13 thousand faults per yolov4 forward at
416 (~25 ms of system time, 5% of the forward), none for yolov3, whose allocation pattern happens
to stay in the heap.  OpenCV DNN allocates its blobs once and reuses them.  Serving blocks of up
to 32 MiB (glibc's ceiling for this setting) from the heap and not trimming it keeps those pages
mapped; the price is that the process keeps its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # mallopt parameters, glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_CEILING = 32 * 2**20  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
_TRIM = 2**30

#: set by a user who tunes glibc's allocator themselves: then darkconv leaves it alone
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Keep freed tensor memory mapped (glibc ``mallopt``); True if it was set.

    Nothing happens off Linux/glibc, when ``DARKCONV_KEEP_MEMORY=0``, or when the user already
    tunes the allocator (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
    ``GLIBC_TUNABLES``) or preloads another one (``LD_PRELOAD``, e.g. jemalloc or tcmalloc)."""
    if not sys.platform.startswith("linux") or os.environ.get("DARKCONV_KEEP_MEMORY") == "0":
        return False
    if any(os.environ.get(name) for name in (*_USER_SETTINGS, "LD_PRELOAD")):
        return False
    try:  # the process's own symbols, libc's among them (find_library would run ldconfig: ~20 ms)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_CEILING) and mallopt(_M_TRIM_THRESHOLD, _TRIM))
