"""Child processes that do not outlive their parent."""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable


def _linux_prctl():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:  # not glibc Linux: no parent-death signal
        return None


_PRCTL = _linux_prctl()  # looked up here, never in a forked child
PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 10.0  # SIGTERM, then this long for a clean `stopped` exit, then SIGKILL


def _sigterm_on_parent_death() -> None:
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child gets SIGTERM when its parent dies (Linux).

    A trial's parent is a Ray worker that goes when the sweep's driver is killed; without this
    its trainer would train on, orphaned, holding the GPU. SIGTERM, not SIGKILL, so the trainer
    writes `end: stopped` (and torchrun forwards it to its ranks).
    """
    return _sigterm_on_parent_death if _PRCTL is not None else None
