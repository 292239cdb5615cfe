"""A tiny speedrun-style train_gpt.py for the script-backend tests, written for this project.

It has the shape the records' scripts have (a Hyperparameters dataclass, a list of training
stages, optimizers built from literals, a stable-then-cooldown LR, the record's console lines)
and really trains a 2-layer transformer on the real-text fixture shards, with tokens folded into
a small vocabulary so that a few steps take a few seconds on a CPU. Data paths are relative to the
working directory, as in the records: run it from the repository root. As HEAD's does, it
imports its loss from triton_kernels.py beside it, reads that file by its own folder to log its
code, and writes the log to logs/final/<uuid>.txt after creating only logs/ (the 2025-08 records).
"""

import glob
import os
import sys
import time
import uuid
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from triton_kernels import SoftcappedCrossEntropy

with open(sys.argv[0]) as f:
    code = f.read()
with open(os.path.join(os.path.dirname(sys.argv[0]), "triton_kernels.py")) as f:
    code += "\n# triton_kernels.py\n" + f.read()


@dataclass(slots=True)
class Hyperparameters:
    train_files: str = "trainer/fixtures/fixture_train_*.bin"  # training shards (glob)
    val_files: str = "trainer/fixtures/fixture_val_*.bin"  # validation shards (glob)
    val_tokens: int = 16 * 1024  # validation set size
    seq_len: int = 64
    vocab_size: int = 512  # token ids are folded into this many
    model_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    num_iterations: int = 8  # optimizer steps
    cooldown_frac: float = 0.5  # tail of the run with a decaying lr
    val_loss_every: int = 4  # steps between validations (0: at the end only)
    seed: int = 0
    run_id = f"final/{uuid.uuid4()}"


args = Hyperparameters()


class TrainingStage:
    def __init__(self, duration: float, batch_size: int, lr_mul: float):
        self.duration = duration
        self.batch_size = batch_size  # tokens per step
        self.lr_mul = lr_mul


TRAINING_STAGES = [
    TrainingStage(duration=0.5, batch_size=4 * 64, lr_mul=1.0),
    TrainingStage(duration=0.5, batch_size=8 * 64, lr_mul=1.5),  # a bigger batch takes a higher lr
]


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        assert dim % num_heads == 0, f"model_dim {dim} is not a multiple of num_heads {num_heads}"
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.fc = nn.Linear(dim, 4 * dim, bias=False)
        self.out = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(F.rms_norm(x, (C,))).view(B, T, 3, self.num_heads, -1).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.relu(self.fc(F.rms_norm(x, (C,)))).square())


class GPT(nn.Module):
    def __init__(self, vocab_size: int, dim: int, num_heads: int, num_layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList([Block(dim, num_heads) for _ in range(num_layers)])
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, inputs, targets):
        x = self.embed(inputs)
        for block in self.blocks:
            x = block(x)
        return SoftcappedCrossEntropy.forward(self.lm_head(F.rms_norm(x, (x.size(-1),))), targets)


def load_tokens(pattern: str) -> torch.Tensor:
    files = sorted(glob.glob(pattern))
    assert files, f"no files match {pattern} (run from the repository root)"
    header = np.fromfile(files[0], dtype=np.int32, count=256)
    assert header[0] == 20240520, f"{files[0]}: not a shard"
    tokens = np.fromfile(files[0], dtype=np.uint16, count=int(header[2]), offset=256 * 4)
    return torch.from_numpy(tokens.astype(np.int64) % args.vocab_size)


def get_lr(step: int):
    x = step / args.num_iterations  # fraction of the run done
    if x < 1 - args.cooldown_frac:
        return 1.0
    w = (1 - x) / args.cooldown_frac
    return w * 1.0 + (1 - w) * 0.1


def get_stage(step: int) -> TrainingStage:
    x = step / args.num_iterations
    for stage in TRAINING_STAGES:
        if x < stage.duration:
            return stage
        x -= stage.duration
    return TRAINING_STAGES[-1]


rank = int(os.environ.get("RANK", "0"))  # torchrun sets it
torch.manual_seed(args.seed)
torch.set_num_threads(1)
train_tokens, val_tokens = load_tokens(args.train_files), load_tokens(args.val_files)[: args.val_tokens + 1]
model = GPT(args.vocab_size, args.model_dim, args.num_heads, args.num_layers)
adam_params = [
    dict(params=model.embed.parameters(), lr=0.05),
    dict(params=model.blocks.parameters(), lr=0.01),
    dict(params=model.lm_head.parameters(), lr=0.005),
]
optimizer = torch.optim.Adam(adam_params, betas=(0.9, 0.95), eps=1e-10)
for group in optimizer.param_groups:
    group["initial_lr"] = group["lr"]


def evaluate() -> float:
    model.eval()
    n = (len(val_tokens) - 1) // args.seq_len * args.seq_len
    with torch.no_grad():
        loss = model(val_tokens[:n].view(-1, args.seq_len), val_tokens[1 : n + 1].view(-1, args.seq_len))
    model.train()
    return loss.item()


if rank == 0:
    os.makedirs("logs", exist_ok=True)
    logfile = f"logs/{args.run_id}.txt"
    with open(logfile, "w") as f:
        f.write(code + "=" * 100 + "\n")


def print0(s: str) -> None:
    if rank == 0:
        print(s, flush=True)
        with open(logfile, "a") as f:
            f.write(s + "\n")


train_steps = args.num_iterations
print0(f"run tag: {os.environ.get('TINY_RUN_TAG', '')}")  # what the run's environment says
position = 0
training_time_ms = 0.0
t0 = time.perf_counter()
for step in range(train_steps + 1):
    last_step = step == train_steps
    if last_step or (args.val_loss_every > 0 and step % args.val_loss_every == 0):
        training_time_ms += 1000 * (time.perf_counter() - t0)  # the clock stops for validation
        val_loss = evaluate()
        print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms step_avg:{training_time_ms/max(step, 1):.2f}ms")
        t0 = time.perf_counter()
    if last_step:
        break
    stage = get_stage(step)
    n = stage.batch_size
    if position + n + 1 > len(train_tokens):
        position = 0
    chunk = train_tokens[position : position + n + 1]
    position += n
    loss = model(chunk[:-1].view(-1, args.seq_len), chunk[1:].view(-1, args.seq_len))
    loss.backward()
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * stage.lr_mul * get_lr(step)
    optimizer.step()
    model.zero_grad(set_to_none=True)
    approx_training_time_ms = training_time_ms + 1000 * (time.perf_counter() - t0)
    print0(f"step:{step+1}/{train_steps} train_time:{approx_training_time_ms:.0f}ms step_avg:{approx_training_time_ms/(step + 1):.2f}ms")
