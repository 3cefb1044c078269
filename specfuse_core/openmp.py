"""Hand back a thread's idle OpenMP workers, so that the thread that computes next runs at full speed.

Why: PyTorch's CPU kernels (and oneDNN's) run on GNU OpenMP (libgomp), which gives every thread that
starts parallel work a team of worker threads of its own, kept for the thread's life. Between parallel
regions those workers spin briefly before sleeping, which is what makes a run of small kernels fast;
but as soon as libgomp manages more threads than there are CPUs, it cuts the spinning to almost none
for every team. The engine computes in several threads (a request's own thread, the leader of a batch,
one thread per round of a pooled batch, the adapters' worker threads), so an idle team left behind in
one thread slowed the thread computing next: on the 2-core machine measured, a forward pass took
1.2-1.9x as long in a second thread as in the main thread, and the same in both once the main thread
had released its team (docs/performance.md, "OpenMP teams across threads"). Releasing a team costs
little (libgomp starts a new one at the thread's next parallel region), so the engine releases a
thread's team whenever the thread stops computing: after a round, and before it waits for another thread.

Only libgomp is touched (the runtime of PyTorch's Linux wheels), found among the libraries already
loaded; elsewhere (another OpenMP runtime, macOS, no PyTorch) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

_OMP_PAUSE_SOFT = 1  # omp_pause_resource_t: release the threads, keep the settings


def _find_pause_function() -> Any | None:
    """libgomp's ``omp_pause_resource_all`` if libgomp is loaded in this process, else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            pause = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):  # an old libgomp without OpenMP 5.0's pause
            continue
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
        return pause
    return None


_found: list[Any] = []  # [the function or None], once looked up with PyTorch loaded


def _pause_function() -> Any | None:
    """The pause function, looked up once; a lookup before PyTorch is imported (a remote-only
    ensemble) is not kept, since PyTorch may load libgomp later."""
    if _found:
        return _found[0]
    pause = _find_pause_function()
    if pause is not None or "torch" in sys.modules:
        _found.append(pause)
    return pause


def release_openmp_workers() -> bool:
    """Release the calling thread's idle OpenMP team (libgomp only); returns whether one could be asked
    to. Safe to call from any thread at any time outside a parallel region: a thread without a team,
    or a runtime that is not libgomp, is left as it is."""
    pause = _pause_function()
    if pause is None:
        return False
    return pause(_OMP_PAUSE_SOFT) == 0
