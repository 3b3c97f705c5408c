"""`triage.memory.release_free_memory` hands freed heap pages back to the operating system."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from triage.memory import release_free_memory

BLOCK = 64 * 1024  # under glibc's mmap threshold: served from the heap, kept there when freed
BLOCKS = 3000  # ≈ 190 MB


def _resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def test_freed_heap_pages_leave_the_process() -> None:
    if not Path("/proc/self/statm").exists() or not release_free_memory():
        pytest.skip("needs Linux with glibc's malloc_trim")
    blocks = [b"\x01" * BLOCK for _ in range(BLOCKS)]  # written, so resident
    sentinel = b"\x02" * BLOCK  # above them on the heap: freeing them cannot shrink its top
    held = _resident_bytes()
    del blocks
    freed = _resident_bytes()
    release_free_memory()
    released = _resident_bytes()
    assert len(sentinel) == BLOCK  # the sentinel is still held (it must outlive the blocks)
    if held - freed > BLOCK * BLOCKS / 2:
        # The allocator gave them back itself (an mmap threshold set below BLOCK): nothing to trim.
        pytest.skip("freed blocks left without a trim: this allocator keeps none")
    # free() keeps the pages (they are in the heap's middle); the trim gives most of them back.
    assert freed - released > BLOCK * BLOCKS / 2
