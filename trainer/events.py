"""The trainer's event stream: one JSON object per line, read by the orchestrator.

Events: `start`, `warmup`, `train` (every step), `val`, `checkpoint` and a last `end` whose
`status` is `completed`, `diverged`, `stopped` or `failed`. Alongside, the familiar
`step:N/M val_loss:X train_time:Yms step_avg:Zms` lines go to the console.

Every event has `time` (unix seconds, when it was written). The phase events also say how long
their phase took, so a reader can lay out a run's timeline (orchestrator/trial.py does):
  start   after data checks and model build: `seconds` since `train()` was called (device and
          process group, data, model, optimizers), of which `data_seconds` reading and checking
          the train shard and the validation tokens;
          `env`: the environment fingerprint (host, python, torch; on CUDA the GPU model and
          count, driver, CUDA and triton versions): timings compare only within one fingerprint;
  warmup  after the untimed warm-up (torch.compile on CUDA): `seconds` it took.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any

STATUS_EXIT_CODES = {"completed": 0, "failed": 1, "diverged": 3, "stopped": 4}


class EventWriter:
    """Writes events as JSON lines to a file, a pipe or stdout (`-`); a no-op off rank 0."""

    def __init__(self, target: str | Path | None, enabled: bool = True):
        self._file: IO[str] | None = None
        self.console: IO[str] = sys.stdout
        if target is None or not enabled:
            return
        if str(target) == "-":
            self._file = sys.stdout
            self.console = sys.stderr  # keep stdout pure JSON lines
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(target, "a", buffering=1)

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event and flush it, so a reader sees it at once."""
        if self._file is not None:
            fields = {k: _finite_or_null(v) for k, v in fields.items()}
            self._file.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        self._file = None


def _finite_or_null(value: Any) -> Any:
    """JSON has no NaN or Infinity (json.dumps would write them anyway): a diverged loss is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
