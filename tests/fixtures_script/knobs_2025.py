"""The configuration part of a 2025-style speedrun script, written for the script-backend tests.

Never run, only parsed: every way the records' scripts hold a knob, in one file.
"""

import os
from dataclasses import dataclass

import torch

WINDOW = 1728  # the longest attention window, in tokens
BLOCK_SIZE: int = 128
VAL_TOKENS = 10 * 1024 * 1024
NS_COEFFS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz


@dataclass(slots=True)
class Hyperparameters:
    train_files: str = "data/fineweb10B/fineweb_train_*.bin"  # training shards (glob)
    num_iterations: int = 1695  # optimizer steps
    cooldown_frac: float = 0.45  # tail of the run with a decaying lr
    weight_decay: float = 0  # an int literal in a float field
    batch_size = 8 * 64 * 1024  # tokens per step, no annotation
    eps: float = 1e-10
    logit_shift: float = -0.5
    save_checkpoint: bool = False
    run_id: str = f"{os.getpid()}"  # an f-string: not a knob


args = Hyperparameters()


@dataclass(slots=True)
class TrainingStage:
    duration: float
    batch_size: int
    window_sizes: tuple[int, int]  # (short, long) in blocks
    lr_mul: float = 1.0


TRAINING_STAGES = [
    TrainingStage(duration=1/3, batch_size=8 * 2048 * 8, window_sizes=(1, 3), lr_mul=1.0),
    TrainingStage(duration=1/3, batch_size=16 * 2048 * 8, window_sizes=(3, 7), lr_mul=1.52),  # (16/8)**0.6
    TrainingStage(duration=1/3, batch_size=24 * 2048 * 8, window_sizes=(5, 11), lr_mul=2),  # an int for a float field
]


def get_lr(step: int, floor=0.1):
    x = step / args.num_iterations
    if x > 0.55:
        return floor + 0.9 * (1 - x) / 0.45
    return 1.0


def get_muon_momentum(step: int, warmup_steps=300, momentum_min=0.85, momentum_max=0.95):
    frac = min(step / warmup_steps, 1)
    return (1 - frac) * momentum_min + frac * momentum_max


adam_defaults = dict(lr=0.008, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
muon_defaults = {"lr": 0.05, "momentum": 0.95, "nesterov": True, "ns steps": 5}
TRAIN_MAX_NUM_DOCS = {16384: 64, 32768: 96}


class TrainingManager:
    def __init__(self, model):
        self.block_size = 128
        self.optimizer = Muon(model.parameters(), lr=0.05, momentum=0.95, weight_decay=-1.2e-4)
        self.param_table = {"embed": {"lr_mul": 75.0, "wd_mul": 5.0}}
        self.param_table.update({"scalars": {"lr_mul": 5.0}})


model = GPT(vocab_size=50304, num_layers=12, model_dim=768).cuda()
Muon(model.parameters(), lr=0.02, momentum=0.9)
Muon(model.parameters(), momentum=0.85)
optimizer2 = torch.optim.Adam([dict(params=model.head, lr=0.22), dict(params=model.embed, lr=0.6)], betas=(0.8, 0.95),
                              fused=True)
