"""SIGTERM handled like the Cancel button: batch systems, `timeout` and service managers stop a `qgis_process` run
with SIGTERM, which by default kills it on the spot, leaving its temporary output behind.

`sigterm_cancels(cancel)` turns the first SIGTERM into `cancel()` (the run then stops within one iteration, deletes
its temporary file, leaves the target as it was and exits non-zero); a second SIGTERM kills as usual, for a run
stuck where it cannot check for a cancel. Python runs signal handlers in the main thread only: in QGIS's dialog
(a background task) the context does nothing, and the Cancel button is the way to stop.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable


@contextmanager
def sigterm_cancels(cancel: Callable[[], None]) -> Iterator[list[int]]:
    """Within the block, the first SIGTERM calls `cancel()`; yields a list that holds the signal once received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield received
        return

    def handler(signum, frame):
        if received:  # asked twice: stop now, as SIGTERM normally does
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        received.append(signum)
        cancel()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
