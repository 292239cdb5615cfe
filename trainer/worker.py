"""`python -m trainer.worker`: a warm trainer process that runs one training run after another.

Starting a trainer costs seconds of imports and CUDA set-up and, on a GPU, a compile of the model
(trainer/warm.py keeps that between runs). The orchestrator keeps one worker per trial slot and
hands it the trials one by one:

  stdin   one job per line: {"args": [...], "log": PATH}; `args` are `python -m trainer`'s
  stdout  one reply per job once it has ended: {"exit": CODE}, the exit code `python -m trainer`
          would have returned (0 completed, 1 failed, 2 bad input, 3 diverged, 4 stopped)

A job's console output and errors go to its `log`. SIGTERM stops the running job as it stops
`python -m trainer` (at a step boundary, `end: stopped`); between jobs it is ignored. A job that
fails on anything but bad input ends the worker after its reply: a failed CUDA kernel can leave
the device unusable, so the next trial gets a fresh process. End of stdin ends the worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from contextlib import contextmanager

from trainer.__main__ import main as run_trainer
from trainer.events import STATUS_EXIT_CODES
from trainer.warm import WarmModel

FAILED_EXIT_CODE = STATUS_EXIT_CODES["failed"]


@contextmanager
def output_to(log: str):
    """Point this process's stdout and stderr (the file descriptors, so C code's output too) at `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for s in saved:
            os.close(s)


def run_job(job: dict, warm: WarmModel) -> int:
    """One trainer run in this process; returns its exit code."""
    with output_to(job["log"]):
        try:
            return run_trainer(job["args"], warm)
        except SystemExit as e:  # argparse on bad arguments
            return e.code if isinstance(e.code, int) else FAILED_EXIT_CODE
        except BaseException:
            traceback.print_exc()
            return FAILED_EXIT_CODE
        finally:
            warm.runs += 1
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a late stop request must not end the worker


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", buffering=1)  # stdout proper is each job's log
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    warm = WarmModel(keep_initial=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        code = run_job(json.loads(line), warm)
        replies.write(json.dumps({"exit": code}) + "\n")
        if code == FAILED_EXIT_CODE:
            return FAILED_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
