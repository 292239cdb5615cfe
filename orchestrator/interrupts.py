"""SIGTERM (what `timeout`, systemd and Slurm send) stops a sweep the way Ctrl-C does.

    sigterm = sigterm_as_ctrl_c()   # after ray.init: Ray's native handler would dump a stack and exit 1
    try: ...
    finally: sigterm.restore()

A SIGTERM raises SIGINT in the driver: while Tune runs trials its handler stops them cleanly and
the sweep ends interrupted (exit 130, summary, `--resume` continues it); at any other moment, or
the second time, Python's KeyboardInterrupt does, which the driver handles the same way.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class _Installed:
    previous: Any

    def restore(self) -> None:
        if self.previous is not _NOT_INSTALLED:
            # None: a handler installed outside Python (Ray's), which Python cannot reinstate
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)


_NOT_INSTALLED = object()


def sigterm_as_ctrl_c() -> _Installed:
    """Route SIGTERM to SIGINT until `.restore()`; a no-op off the main thread (signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        return _Installed(_NOT_INSTALLED)
    return _Installed(signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT)))
