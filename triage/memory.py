"""Giving freed memory back to the operating system between an evaluation's phases.

An evaluation's drift grid reads each batch of windows into numpy arrays (their values, sorted
copies, the reference ECDFs they are placed in) and frees them as it goes. glibc's allocator keeps
what is freed for the next request, and after a large block is freed it serves blocks up to 32 MB
from its heaps instead of fresh mappings; so the later phases (calibration, the label arrival's
window query) ran on top of a few hundred MB of freed, still-resident pages. On 10 M rows a look
back (`triage check --at` a past time) peaked at 1.6–2.3 GB from one run to the next, 1.44–1.50 GB
with the free pages handed back once the windows are computed (`malloc_trim`: a few ms).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows' CDLL wants a name
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the operating system; whether it could be asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
