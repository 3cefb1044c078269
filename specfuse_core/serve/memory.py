"""Cap glibc's malloc arenas in a serving process, so its memory stays flat under load.

Why: glibc gives threads that allocate at the same time their own heaps ("arenas"), up to eight per
core, and memory freed in one arena is not reused by another. A server computes in many threads (the
ensemble's round threads, the batch's pooled rounds, request openings), so its resident memory grew
for hundreds of requests: 4.44 -> 5.63 GiB over 192 requests of 8 at a time, against 4.45 -> 4.53 GiB
with two arenas at the same throughput (docs/performance.md, "The server under load").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
SERVER_ARENAS = 2


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Ask glibc to create at most ``arenas`` malloc arenas from now on; returns whether it took it
    (False on a C library without ``mallopt``, e.g. macOS or musl)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return False
    taken = bool(mallopt(M_ARENA_MAX, arenas))
    if not taken:
        logger.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
    return taken
