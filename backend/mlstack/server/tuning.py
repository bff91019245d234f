"""Process-wide tuning of a replica, applied by its entry point (`mlstack serve`), never at import.

The garbage collector: a loaded version is hundreds of thousands of long-lived objects, and every full
collection walked them all, 110-135 ms on the event loop with nothing to collect (the benchmark's p99
under load). After each load they are frozen out of its sight (`freeze_heap`); versions are few and a
forgotten one is a small, rare leak. A request allocates about a hundred short-lived containers that die
with it: at Python's default of 700 allocations a young collection ran every few requests, with nothing
to collect, so it runs every YOUNG_GC_THRESHOLD instead.

glibc's malloc, told to keep the memory a request frees, for the next request, instead of handing it back.
By default free() gives the top of the heap back to the kernel once 128 KiB of it are free, and the next
request faults those pages in again, one zeroed page at a time. Under 100-row batches, several in flight
at once, a replica took about 37,000 page faults a second (78 per request), and the kernel's share of its
CPU was 15%. With the thresholds below it took under 100 a second.

The values are the ones glibc's own adaptive rule grows to at most on 64 bits (an mmap threshold of
32 MiB, trimming at twice that), set from the start. The cost: a replica keeps up to 64 MiB of freed
heap that it would otherwise have returned.
"""

from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger("mlstack.server.tuning")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""mallopt's parameter numbers, from glibc's malloc.h."""
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 64 << 20
YOUNG_GC_THRESHOLD = 10_000
"""Allocations between two young collections (Python's default is 700); measured with bench.compare, the
replica's CPU per 1-row miss fell 2.5% and per 100-row batch 4%."""


def apply() -> None:
    """Everything a serving process sets for itself, once, before it serves."""
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    keep_freed_memory()


def freeze_heap() -> None:
    """Move everything alive now (models, catalogues, manifests) out of the garbage collector's sight."""
    gc.collect()
    gc.freeze()


def keep_freed_memory() -> bool:
    """Set glibc's thresholds for this process; False where there is no glibc mallopt (musl, macOS)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not done:
        log.info("malloc thresholds not set: this C library's mallopt refused them")
    return done
