"""Checkpoints: `DIR/step_NNNNNN/` with the model, each rank's optimizer state and the data position.

A checkpoint is complete once rank 0 has written its `meta.json`, after every rank saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trainer.errors import InputError


def save_checkpoint(
    root: Path, step: int, rank: int, state: dict[str, Any], rank_state: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """Write one checkpoint; `state` and `meta` from rank 0, `rank_state` from every rank."""
    path = root / f"step_{step:06d}"
    path.mkdir(parents=True, exist_ok=True)
    torch.save(rank_state, path / f"rank{rank}.pt")
    if rank == 0:
        torch.save(state, path / "state.pt")
    if dist.is_initialized():
        dist.barrier()
    if rank == 0:
        (path / "meta.json").write_text(json.dumps(meta, indent=1))
    return path


def find_checkpoint(path: Path) -> Path:
    """`path` itself if it is a complete checkpoint, else its latest complete `step_*` child."""
    if (path / "meta.json").is_file():
        return path
    complete = sorted(p for p in path.glob("step_*") if (p / "meta.json").is_file())
    if not complete:
        raise InputError(f"--resume {path}: no complete checkpoint there (expected step_NNNNNN/meta.json)")
    return complete[-1]


def load_checkpoint(path: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(state, rank_state, meta) of a checkpoint directory."""
    meta = json.loads((path / "meta.json").read_text())
    rank_file = path / f"rank{rank}.pt"
    if not rank_file.is_file():
        raise InputError(f"--resume {path}: no state for rank {rank} (it was written by {meta['world_size']} ranks)")
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    rank_state = torch.load(rank_file, map_location="cpu", weights_only=False)
    return state, rank_state, meta
