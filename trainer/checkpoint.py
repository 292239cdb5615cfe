"""Checkpoints: `DIR/step_NNNNNN/` with the model, each rank's optimizer state and the data position.

A checkpoint is complete once rank 0 has written its `meta.json`, after every rank saved. Its
`.pt` files hold tensors and plain data only (dicts, lists, numbers, strings: what state_dict()s
are made of; the data position and counters are in meta.json), so they load with
`torch.load(weights_only=True)`: a crafted file cannot run code when a run resumes from it.
"""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trainer.errors import InputError

STATE_KEYS = ("model", "adam")  # state.pt, rank 0's
RANK_STATE_KEYS = ("muon",)  # rankN.pt, every rank's
META_KEYS = ("step", "tokens", "train_time_ms", "world_size", "stream", "config")
DETAIL_CHARS = 120  # of a loader's own message quoted in an error


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


@dataclass(frozen=True)
class Checkpoint:
    path: Path  # its step_NNNNNN directory
    state: dict[str, Any]  # rank 0's: STATE_KEYS
    rank_state: dict[str, Any]  # this rank's: RANK_STATE_KEYS
    meta: dict[str, Any]  # META_KEYS


def load_checkpoint(path: Path, rank: int) -> Checkpoint:
    """The checkpoint in directory `path`, as rank `rank` resumes from it; InputError naming the
    file that is malformed, truncated or holds more than tensors and plain data."""
    meta = _read_meta(path / "meta.json")
    rank_file = path / f"rank{rank}.pt"
    if not rank_file.is_file():
        raise InputError(f"--resume {path}: no state for rank {rank} (it was written by {meta['world_size']} ranks)")
    return Checkpoint(path, _load_tensors(path / "state.pt", STATE_KEYS), _load_tensors(rank_file, RANK_STATE_KEYS), meta)


def _read_meta(file: Path) -> dict[str, Any]:
    try:
        meta = json.loads(file.read_bytes())
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
        raise InputError(f"--resume {file}: not a checkpoint's meta.json ({describe(e)})") from None
    missing = [key for key in META_KEYS if key not in meta] if isinstance(meta, dict) else list(META_KEYS)
    if missing:
        raise InputError(f"--resume {file}: not a checkpoint's meta.json (no {', '.join(missing)})")
    return meta


def _load_tensors(file: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            # a foreign pickle makes torch warn about its protocol before refusing it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            data = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(f"--resume {file}: holds more than tensors and plain data ({_refused(e)}); "
                         "refused, as loading it could run code") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, KeyError, ... for a truncated or foreign file
        raise InputError(f"--resume {file}: truncated or not a checkpoint file ({describe(e)})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(key), dict) for key in keys):
        raise InputError(f"--resume {file}: not a checkpoint file of this trainer (expected the state of {', '.join(keys)})")
    return data


def _refused(error: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused, from its long message."""
    _, marker, rest = str(error).partition("WeightsUnpickler error:")
    lines = [line.strip() for line in rest.splitlines() if line.strip()] if marker else []
    return _cut(lines[0].split(" was not an allowed global")[0] if lines else "refused by torch")


def describe(error: Exception) -> str:
    """An exception as a short one-line detail for an error message."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return _cut(f"{type(error).__name__}: {first}" if first else type(error).__name__)


def _cut(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"
