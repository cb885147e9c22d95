"""PROJ contexts of the threads Python did not start: QGIS's task and Processing threads.

pyproj 3.7.0 and 3.7.1 keep one PROJ context per operating-system thread, in thread-specific
storage, and free it when the Python thread state that created it goes away, without clearing
that storage. A QgsTask or a Processing algorithm runs its Python on a pooled QThread whose
thread state lives for one call; the next task on the same thread then hands PROJ the freed
context and QGIS dies in ``projCppContext::getDatabaseContext()`` (pyproj#1509, fixed by
pyproj#1541 in 3.7.2; seen with QGIS 3.40 and Debian 13's pyproj 3.7.1: a user building NDVI
composites twice lost QGIS). Keeping each such thread's context referenced keeps it alive for
as long as the thread may come back to it, which is what those pyproj versions assume.
"""

import threading
from typing import Dict

_AFFECTED = ((3, 7, 0), (3, 7, 1))
_kept: Dict[int, object] = {}  # operating-system thread id -> pyproj's context manager for that thread
_lock = threading.Lock()


def affected(version: str) -> bool:
    numbers = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    return numbers in _AFFECTED


def keep_proj_context() -> None:
    """Call at the end of Python code that ran on a Qt worker thread (a task's ``run()``, an algorithm)."""
    import sys

    pyproj = sys.modules.get("pyproj")
    if pyproj is None or not affected(getattr(pyproj, "__version__", "")):
        return  # never imported here, or a pyproj that clears its storage itself (or keeps one global context)
    try:
        from pyproj._context import get_context_manager
    except ImportError:
        return
    manager = get_context_manager()  # None when this call reused the context an earlier call on this thread made
    if manager is not None:
        with _lock:
            # A thread id is reused only after its thread has ended: the context it replaces is no one's any more.
            _kept[threading.get_native_id()] = manager
