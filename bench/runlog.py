"""Run a training command and time what it prints (shared by the bench scripts).

Both our trainer and modded-nanogpt's scripts print `step:N/M val_loss:X train_time:Yms`
and `step:N/M train_time:Yms` lines and a `peak memory allocated: X MiB` line, so one
parser measures both the same way.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STEP = re.compile(r"^step:(\d+)/(\d+) (?:val_loss:(\S+) )?train_time:(\d+)ms")
PEAK = re.compile(r"peak memory allocated: (\d+) MiB")


@dataclass
class RunLog:
    """What a training run printed, with the wall-clock second each line arrived."""

    label: str
    returncode: int = 0
    wall_s: float = 0.0
    startup_s: float | None = None  # launch to the first timed step (after warm-up and the step-0 validation)
    train_times_ms: dict[int, float] = field(default_factory=dict)
    val_losses: dict[int, float] = field(default_factory=dict)
    peak_memory_mib: int | None = None
    tail: list[str] = field(default_factory=list)

    def step_times_ms(self) -> list[float]:
        """Duration of each timed step, skipping the first (it includes any lazy start-up work)."""
        steps = sorted(s for s in self.train_times_ms if s > 0)
        return [self.train_times_ms[b] - self.train_times_ms[a] for a, b in zip(steps, steps[1:]) if b == a + 1]

    def median_step_ms(self) -> float:
        return statistics.median(self.step_times_ms())

    def final_val_loss(self) -> float | None:
        return self.val_losses[max(self.val_losses)] if self.val_losses else None


def run_and_time(label: str, cmd: list[str], cwd: Path | None = None, env: dict | None = None, log: Path | None = None) -> RunLog:
    """Run `cmd`, echo and parse its output; start-up is measured up to the step-0 validation line."""
    out = RunLog(label)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    start = time.perf_counter()
    logf = open(log, "w") if log else None
    with subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:
            now = time.perf_counter() - start
            if logf:
                logf.write(f"{now:9.2f} {line}")
            out.tail = (out.tail + [line.rstrip()])[-30:]
            if m := STEP.match(line):
                step, _, val, train_ms = m.groups()
                out.train_times_ms[int(step)] = float(train_ms)
                if val is not None:
                    out.val_losses[int(step)] = float(val)
                    if int(step) == 0 and out.startup_s is None:
                        out.startup_s = now
                print(f"[{label} {now:7.1f}s] {line.rstrip()}", flush=True) if val or int(step) % 25 == 0 else None
            elif m := PEAK.search(line):
                out.peak_memory_mib = int(m.group(1))
    out.returncode = p.returncode
    out.wall_s = time.perf_counter() - start
    if logf:
        logf.close()
    if out.returncode:
        print(f"[{label}] exited {out.returncode}; last lines:\n" + "\n".join(out.tail), file=sys.stderr)
    return out


def bf16_matmul_tflops(n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 matmul rate of this GPU (median of `reps` n^3 products on random data)."""
    import torch

    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1000)
    return 2 * n**3 / statistics.median(times) / 1e12
