"""A tiny script in the shape of the optimization track's baseline (track 3's train_gpt_simple.py),
written for this project's tests.

As the baseline does: module-level data and model, then a loop over trials whose body holds the
knobs as literals (`train_steps`, the optimizer's learning rates and weight decay, a cooldown
fraction in a schedule's default), validation every few steps and every step near the end, and
log lines in seconds (`step:S/N val_loss:L train_time:Ts step_avg:Ams`). It really trains a 1-layer
transformer on the real-text fixture shards (tokens folded into a small vocabulary) in a few
seconds on a CPU. Unlike the baseline, it seeds itself from $SPEEDRUN_SEED (0 when unset), so a
test knows what each seed prints. Run it from the repository root.
"""

import glob
import os
import sys
import time
import uuid

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

with open(sys.argv[0]) as f:
    code = f.read()

VOCAB, DIM, SEQ = 256, 32, 32


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.fc = nn.Linear(DIM, 4 * DIM, bias=False)
        self.proj = nn.Linear(4 * DIM, DIM, bias=False)
        self.head = nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, inputs, targets):
        x = self.embed(inputs)
        x = x + self.proj(F.relu(self.fc(F.rms_norm(x, (DIM,)))).square())
        logits = self.head(F.rms_norm(x, (DIM,)))
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def load_tokens(pattern: str) -> torch.Tensor:
    files = sorted(glob.glob(pattern))
    assert files, f"no files match {pattern} (run from the repository root)"
    header = np.fromfile(files[0], dtype=np.int32, count=256)
    tokens = np.fromfile(files[0], dtype=np.uint16, count=int(header[2]), offset=256 * 4)
    return torch.from_numpy(tokens.astype(np.int64) % VOCAB)


torch.manual_seed(int(os.environ.get("SPEEDRUN_SEED", "0")))
torch.set_num_threads(1)
train_tokens = load_tokens("trainer/fixtures/fixture_train_*.bin")
val_tokens = load_tokens("trainer/fixtures/fixture_val_*.bin")[: 8 * 1024 + 1]
model = GPT()

os.makedirs("logs", exist_ok=True)
logfile = f"logs/{uuid.uuid4()}.txt"


def print0(s, console=False):
    if console:
        print(s, flush=True)
    with open(logfile, "a") as f:
        print(s, file=f)


print0(code)
print0("=" * 100)

num_trials = 1
for _ in range(num_trials):
    # we want to minimize this while still reaching the target
    train_steps = 24

    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, betas=(0.9, 0.95), weight_decay=0.01)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]

    def set_hparams(step, cooldown_frac=0.5):
        progress = step / train_steps
        eta = 1.0 if progress < 1 - cooldown_frac else (1 - progress) / cooldown_frac
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * eta

    training_time = 0.0
    last_val_step = 0
    t0 = time.perf_counter()
    for step in range(train_steps + 1):
        val_step_freq = 8 if step / train_steps < 0.75 else 2  # dense val near the end, as the track allows
        if step == train_steps or step % val_step_freq == 0:
            since = time.perf_counter() - t0
            step_avg = since / (step - last_val_step) if step > 0 else float("nan")
            last_val_step = step
            training_time += since
            model.eval()
            with torch.no_grad():
                n = (len(val_tokens) - 1) // SEQ * SEQ
                val_loss = model(val_tokens[:n].view(-1, SEQ), val_tokens[1 : n + 1].view(-1, SEQ)).item()
            model.train()
            print0(f"step:{step}/{train_steps} val_loss:{val_loss:.5f} train_time:{training_time:.3f}s"
                   + f" step_avg:{1000*step_avg:.2f}ms", console=True)
            t0 = time.perf_counter()
        if step == train_steps:
            break
        start = (step * 16 * SEQ) % (len(train_tokens) - 16 * SEQ - 1)
        chunk = train_tokens[start : start + 16 * SEQ + 1]
        model(chunk[:-1].view(-1, SEQ), chunk[1:].view(-1, SEQ)).backward()
        set_hparams(step)
        optimizer.step()
        model.zero_grad(set_to_none=True)
