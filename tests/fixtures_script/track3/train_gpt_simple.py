"""A tiny script in the shape of the optimization track's baseline (track 3's train_gpt_simple.py),
written for this project's tests.

As the baseline does: module-level data and model, then a loop over trials whose body holds the
knobs as literals (`train_steps`; an aux Adam `optimizer1` of three param groups and a hidden-matrix
`optimizer2`, with their learning rates and weight decays; a cooldown fraction in a schedule's
default), validation every few steps and more often near the end, and
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
        self.blocks = nn.ModuleList([nn.Linear(DIM, 4 * DIM, bias=False), nn.Linear(4 * DIM, DIM, bias=False)])
        self.gains = nn.Parameter(torch.ones(DIM))
        self.proj = nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, inputs, targets):
        x = self.embed(inputs)
        fc, out = self.blocks
        x = x + out(F.relu(fc(F.rms_norm(x, (DIM,)))).square())
        logits = self.proj(F.rms_norm(x, (DIM,)) * self.gains)
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

    for name, p in model.named_parameters():
        if name.endswith("gains"):
            p.data.fill_(1.0)
        else:
            torch.nn.init.normal_(p, std=0.02)

    # the baseline's layout: aux Adam on the embedding, the head and the 1-D params; another
    # optimizer (there Muon; SGD with momentum here) on the hidden matrices
    optimizer1 = torch.optim.AdamW([dict(params=[model.embed.weight], lr=0.05),
                                    dict(params=[model.proj.weight], lr=0.01),
                                    dict(params=[model.gains], lr=0.01)],
                                   betas=(0.8, 0.95), eps=1e-10, weight_decay=0.001)
    optimizer2 = torch.optim.SGD(list(model.blocks.parameters()), lr=0.3, momentum=0.9, weight_decay=0.01)
    optimizers = [optimizer1, optimizer2]
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]

    def set_hparams(step, cooldown_frac=0.5):
        progress = step / train_steps
        eta = 1.0 if progress < 1 - cooldown_frac else (1 - progress) / cooldown_frac
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * eta

    training_time = 0.0
    last_val_step = 0
    t0 = time.perf_counter()
    for step in range(train_steps + 1):
        val_step_freq = 8 if step / train_steps < 0.75 else 2  # dense near the end, as the track's rules allow
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
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
