"""Time of one `tiny` training step on the CPU, with and without keeping freed memory.

Each variant runs in its own process: build the `tiny` run, warm up 3 steps, time 10.

Example:
  python bench/cpu_step_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

STEPS = 10


def time_steps(keep_freed: bool) -> list[float]:
    """Seconds per step of the tiny preset in this process."""
    from trainer.config import load_config
    from trainer.data import TrainStream
    from trainer.events import EventWriter
    from trainer.train import Dist, Run, keep_freed_memory

    if keep_freed:
        keep_freed_memory()
    run = Run(load_config("tiny"), EventWriter(None), Dist())
    stream = TrainStream(run.train_files, epochs=2)
    for step in range(3):
        run.train_step(step, stream)
    times = []
    for step in range(3, 3 + STEPS):
        t = time.perf_counter()
        run.train_step(step, stream)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    if len(sys.argv) == 2:
        print(statistics.median(time_steps(sys.argv[1] == "keep")))
        return
    rows = {}
    for variant in ("default", "keep"):
        out = subprocess.run([sys.executable, __file__, variant], capture_output=True, text=True, check=True)
        rows[variant] = float(out.stdout.strip().splitlines()[-1])
    print(f"tiny step, glibc defaults:        {rows['default'] * 1000:7.0f} ms")
    print(f"tiny step, keep_freed_memory():   {rows['keep'] * 1000:7.0f} ms")
    print(f"ratio: {rows['default'] / rows['keep']:.2f}x")


if __name__ == "__main__":
    main()
