"""Finding the trainer processes a test's sweep left behind (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def trainer_processes(workdir: Path) -> list[int]:
    """Pids of trainers (a run's process or a warm worker, `python -m trainer...`) working in
    `workdir`, the sweep's working directory (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit():
                continue
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"-m" in cmdline and any(arg.startswith(b"trainer") for arg in cmdline) \
                    and (proc / "cwd").resolve() == workdir.resolve():
                found.append(int(proc.name))
        except OSError:
            pass
    return found
