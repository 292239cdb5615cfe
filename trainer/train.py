"""The training loop: one run of one config, on one process or under torchrun.

Order of a run: validate inputs, build model and optimizers, untimed warm-up on the
real shapes (then reset model and optimizer state), then the timed loop, which stops
the clock for validation. Every rank draws the same global batch and trains on its
contiguous share, so the global batch (and the losses) do not depend on the rank count.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from trainer.checkpoint import Checkpoint, describe, find_checkpoint, load_checkpoint, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import TrainStream, load_shard, load_val_tokens, rank_share, resolve_files, val_sequences
from trainer.environment import fingerprint
from trainer.errors import InputError
from trainer.events import EventWriter
from trainer.model import GPT
from trainer.muon import Muon, newton_schulz
from trainer.schedules import Schedules
from trainer.warm import WarmModel


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def on(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> Dist:
    """Join the process group that torchrun describes in the environment, if any."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("runtime.device=cuda but no CUDA device is available; use --set runtime.device=cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo", device_id=dev if device == "cuda" else None)
    return Dist(rank, world, dev)


def keep_freed_memory() -> None:
    """Stop glibc returning large freed blocks to the OS (CPU runs).

    Each micro-batch allocates logits of ~100 MB; above glibc's mmap threshold every one
    is a fresh mapping whose pages fault in again: `tiny` steps ran 2.3x slower on 2 cores
    (bench/cpu_step_time.py, docs/benchmarks.md).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


class StopFlag:
    """Set by SIGTERM; every rank stops at the same step boundary."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, *_):
        self.requested = True

    def agreed(self, d: Dist) -> bool:
        if not d.on:
            return self.requested
        flag = torch.tensor(float(self.requested), device=d.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def max_seq_len(cfg: TrainConfig) -> int:
    return max(max(s.tokens for s in cfg.schedule.seq_len), cfg.data.val_seq_len)


INIT_ONLY = {"init_scale", "zero_init_outputs"}  # model keys that change weights, not the module


def architecture_key(cfg: TrainConfig, d: Dist) -> str:
    """What decides the module and its compiled code: runs with equal keys can share them (a
    sweep of the initialisation reuses one compiled module)."""
    model = cfg.model.model_dump_json(exclude=INIT_ONLY)
    return f"{model} seq={max_seq_len(cfg)} {d.device} compile={cfg.runtime.compile}"


def init_key(cfg: TrainConfig, d: Dist) -> str:
    """What decides build_model's weights: runs with equal keys start from the same weights."""
    return f"{cfg.model.model_dump_json()} seq={max_seq_len(cfg)} {d.device} world={d.world} seed={cfg.runtime.seed}"


def build_model(cfg: TrainConfig, d: Dist) -> GPT:
    """The GPT on the run's device; embeddings in bf16 on CUDA, as in the record."""
    torch.manual_seed(cfg.runtime.seed)
    cuda = d.device.type == "cuda"
    model = GPT(cfg.model, max_seq_len(cfg), flex=cuda, fp8_head=cuda and cfg.model.fp8_head).to(d.device)
    if cuda:
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                m.bfloat16()
    if d.on:
        for p in model.parameters():
            dist.broadcast(p.detach(), 0)
    return model


@functools.cache
def compiled_newton_schulz():
    """One compiled orthogonalization per process: a new torch.compile wrapper per run would not
    find the code an earlier run of a warm process compiled (dynamo guards on the wrapper)."""
    return torch.compile(newton_schulz, dynamic=False, fullgraph=True)


def build_optimizers(model: GPT, cfg: TrainConfig, cuda: bool) -> tuple[torch.optim.AdamW, Muon]:
    """AdamW (decoupled decay, as the record's Adam) for embeddings, scalars and head; Muon for hidden matrices."""
    o, groups = cfg.optim, model.param_groups()
    adam = torch.optim.AdamW(
        [
            dict(params=groups["embed"], lr=o.adam_lr * o.embed_lr_mul),
            dict(params=groups["scalar"], lr=o.adam_lr * o.scalar_lr_mul),
            dict(params=groups["head"], lr=o.adam_lr * o.head_lr_mul),
        ],
        betas=o.adam_betas,
        eps=o.adam_eps,
        weight_decay=o.adam_weight_decay,
        fused=cuda,
    )
    muon = Muon(
        groups["hidden"],
        lr=o.muon_lr,
        momentum=cfg.schedule.muon_momentum.start,
        weight_decay=o.muon_weight_decay,
        ns_steps=o.muon_ns_steps,
    )
    if cuda:
        muon.orthogonalize = compiled_newton_schulz()
    for opt in (adam, muon):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    return adam, muon


class Run:
    """State and steps of one training run."""

    def __init__(self, cfg: TrainConfig, events: EventWriter, d: Dist, warm: WarmModel):
        self.cfg, self.events, self.d, self.warm = cfg, events, d, warm
        self.sched = Schedules(cfg.schedule, cfg.model)
        self.cuda = d.device.type == "cuda"
        cfg.check_for_run(d.world)
        t_data = time.perf_counter()
        self.train_files = resolve_files(cfg.data.train_files, "data.train_files")
        load_shard(self.train_files[0], cfg.model.vocab_size)  # fail on a bad first shard before any work
        val_files = resolve_files(cfg.data.val_files, "data.val_files")
        val_tokens = load_val_tokens(val_files, cfg.data.val_tokens, cfg.model.vocab_size)
        self.val_seqs = val_sequences(val_tokens, cfg.data.val_seq_len, d.rank, d.world)
        self.data_seconds = time.perf_counter() - t_data  # the `start` event reports it
        compiled = self.cuda and cfg.runtime.compile
        self.model, self.forward = warm.adopt(
            lambda: build_model(cfg, d), architecture_key(cfg, d), init_key(cfg, d), self.cuda,
            lambda m: torch.compile(m, dynamic=False, fullgraph=True) if compiled else m,
        )
        self.optimizers = build_optimizers(self.model, cfg, self.cuda)
        self.stream = TrainStream(self.train_files, epochs=cfg.data.epochs, vocab_size=cfg.model.vocab_size)
        self.step = 0
        self.tokens = 0
        self.train_time_ms = 0.0
        self._windows: dict[int, Tensor] = {}

    # --- pieces of a step -------------------------------------------------------------

    def window(self, step: int) -> Tensor:
        """The window as a device tensor (cached per value), so changing it never recompiles."""
        blocks = self.sched.window_blocks(step)
        if blocks not in self._windows:
            self._windows[blocks] = torch.tensor(blocks, dtype=torch.int32, device=self.d.device)
        return self._windows[blocks]

    def _to_device(self, seq) -> tuple[Tensor, Tensor]:
        buf = torch.from_numpy(seq)
        if self.cuda:
            buf = buf.pin_memory()
        inputs = buf[:-1].to(self.d.device, dtype=torch.int32, non_blocking=True)
        targets = buf[1:].to(self.d.device, dtype=torch.int64, non_blocking=True)
        return inputs, targets

    def train_step(self, step: int, stream: TrainStream) -> Tensor:
        """One optimizer step; returns the mean train loss over the global batch (a device scalar)."""
        batch, seq_len = self.sched.batch_tokens(step), self.sched.seq_len(step)
        n = batch // seq_len
        seqs = stream.next_sequences(n, seq_len)[rank_share(n, self.d.rank, self.d.world)]
        window = self.window(step)
        loss_sum = torch.zeros((), device=self.d.device)
        for seq in seqs:
            inputs, targets = self._to_device(seq)
            loss = self.forward(inputs, targets, window)
            loss.backward()
            loss_sum += loss.detach()
        if self.d.on:
            handles = [dist.all_reduce(p.grad, async_op=True) for p in self.model.parameters() if p.grad is not None]
            handles.append(dist.all_reduce(loss_sum, async_op=True))
            for h in handles:
                h.wait()
        lr_mul = self.sched.lr_multiplier(step)
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * lr_mul
        for g in self.optimizers[1].param_groups:
            g["momentum"] = self.sched.muon_momentum(step)
        for opt in self.optimizers:
            opt.step()
        self.model.zero_grad(set_to_none=True)
        return loss_sum / batch

    @torch.no_grad()
    def validate(self, step: int, stop: StopFlag) -> float | None:
        """Mean loss over exactly `data.val_tokens` validation tokens; None if stopped midway."""
        self.model.eval()
        window = self.window(step)
        total = torch.zeros((), dtype=torch.float64, device=self.d.device)
        count = torch.zeros((), dtype=torch.float64, device=self.d.device)
        for seq in self.val_seqs:
            if stop.requested and not self.d.on:
                self.model.train()
                return None
            inputs, targets = self._to_device(seq)
            total += self.forward(inputs, targets, window).double()
            count += targets.numel()
        if self.d.on:
            dist.all_reduce(total)
            dist.all_reduce(count)
        self.model.train()
        return (total / count).item()

    def warm_up(self) -> bool:
        """Untimed steps on every batch shape (compiles kernels), then restore the initial state.
        Skipped (returns False) when this process's kept forward has run on every shape already."""
        steps = self.cfg.runtime.warmup_steps
        shapes = self.sched.batch_shapes()
        if not steps or not self.warm.needs_warmup([s[1:] for s in shapes]):
            return False
        initial = copy.deepcopy(self.model.state_dict()), [copy.deepcopy(o.state_dict()) for o in self.optimizers]
        stream = TrainStream(self.train_files, epochs=self.cfg.data.epochs, vocab_size=self.cfg.model.vocab_size)
        for i in range(steps):
            self.train_step(shapes[i % len(shapes)][0], stream)
        self.model.load_state_dict(initial[0])
        for opt, state in zip(self.optimizers, initial[1]):
            opt.load_state_dict(state)
        self.warm.warmed.update(s[1:] for s in shapes)
        return True

    # --- checkpoints --------------------------------------------------------------------

    def save(self, root: Path) -> Path:
        path = save_checkpoint(
            root,
            self.step,
            self.d.rank,
            state=dict(model=self.model.state_dict(), adam=self.optimizers[0].state_dict()),
            rank_state=dict(muon=self.optimizers[1].state_dict()),
            meta=dict(
                step=self.step,
                tokens=self.tokens,
                train_time_ms=self.train_time_ms,
                world_size=self.d.world,
                stream=self.stream.state_dict(),
                config=self.cfg.model_dump(mode="json"),
            ),
        )
        self.events.emit("checkpoint", step=self.step, path=str(path))
        return path

    def restore(self, checkpoint: Checkpoint) -> None:
        path, state, rank_state, meta = checkpoint.path, checkpoint.state, checkpoint.rank_state, checkpoint.meta
        if meta["world_size"] != self.d.world:
            raise InputError(f"--resume {path}: written by {meta['world_size']} rank(s), this run has {self.d.world}")
        mine = self.cfg.model_dump(mode="json")
        theirs = meta["config"] if isinstance(meta["config"], dict) else {}
        for section in ("model", "optim", "schedule", "data", "eval"):
            if theirs.get(section) != mine[section]:
                raise InputError(f"--resume {path}: the checkpoint's '{section}' config differs from this run's")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizers[0].load_state_dict(state["adam"])
            self.optimizers[1].load_state_dict(rank_state["muon"])
            self.stream.load_state_dict(meta["stream"])
            self.step, self.tokens = int(meta["step"]), int(meta["tokens"])
            self.train_time_ms = float(meta["train_time_ms"])
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # a state of another model, or edited
            raise InputError(f"--resume {path}: its state does not fit this run ({describe(e)})") from None

    # --- the loop -----------------------------------------------------------------------

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, stop: StopFlag) -> str:
        """Train to `schedule.num_iterations`; returns the final status."""
        cfg, ev, N = self.cfg, self.events, self.cfg.schedule.num_iterations
        every, ckpt_every = cfg.eval.every, cfg.runtime.checkpoint_every
        self.sync()
        t0 = time.perf_counter()
        for step in range(self.step, N + 1):
            self.step = step
            if step == N or (every > 0 and step % every == 0 and (step > 0 or cfg.eval.at_start)):
                self.sync()
                self.train_time_ms += 1000 * (time.perf_counter() - t0)
                val_loss = self.validate(step, stop)
                if val_loss is None:
                    return "stopped"
                step_avg = self.train_time_ms / max(step, 1)
                ev.emit("val", step=step, val_loss=val_loss, train_time_ms=self.train_time_ms, tokens=self.tokens)
                self.print(f"step:{step}/{N} val_loss:{val_loss:.4f} train_time:{self.train_time_ms:.0f}ms step_avg:{step_avg:.2f}ms")
                if not math.isfinite(val_loss):
                    return "diverged"
                self.sync()
                t0 = time.perf_counter()
            if step == N:
                return "completed"
            loss = self.train_step(step, self.stream).item()
            self.step = step + 1
            self.tokens += self.sched.batch_tokens(step)
            now_ms = self.train_time_ms + 1000 * (time.perf_counter() - t0)
            ev.emit(
                "train",
                step=step + 1,
                train_loss=loss,
                train_time_ms=now_ms,
                tokens=self.tokens,
                lr_mul=self.sched.lr_multiplier(step),
                window=self.sched.window_blocks(step) * 128,
                batch_tokens=self.sched.batch_tokens(step),
                seq_len=self.sched.seq_len(step),
            )
            self.print(f"step:{step + 1}/{N} train_time:{now_ms:.0f}ms step_avg:{now_ms / (step + 1):.2f}ms")
            if not math.isfinite(loss):
                self.train_time_ms = now_ms  # the `end` event reports the time up to this step
                return "diverged"
            if ckpt_every and (step + 1) % ckpt_every == 0 and cfg.runtime.checkpoint_dir:
                self.sync()
                self.train_time_ms += 1000 * (time.perf_counter() - t0)
                self.save(Path(cfg.runtime.checkpoint_dir))
                t0 = time.perf_counter()
            if stop.agreed(self.d):
                self.train_time_ms += 1000 * (time.perf_counter() - t0)  # the `end` event reports it
                return "stopped"
        return "completed"

    def print(self, line: str) -> None:
        if self.d.rank == 0:
            print(line, file=self.events.console, flush=True)


def train(cfg: TrainConfig, events_path: str | None = None, resume: Path | None = None,
          warm: WarmModel | None = None) -> str:
    """Run one training run end to end, writing events; returns the final status.
    `warm` is what this process kept from its earlier runs (trainer/worker.py); None: nothing."""
    called = time.perf_counter()  # the `start` event's `seconds` count from here
    stop = StopFlag()
    if resume is not None:
        find_checkpoint(resume)  # a bad path fails before any work
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    d = setup_distributed(cfg.runtime.device)
    if d.device.type == "cpu":
        keep_freed_memory()
    events = EventWriter(events_path, enabled=d.rank == 0)
    warm = warm if warm is not None else WarmModel()
    run: Run | None = None
    status = "failed"
    try:
        # read before any work, so that a bad checkpoint costs no data loading or warm-up
        checkpoint = load_checkpoint(find_checkpoint(resume), d.rank) if resume is not None else None
        run = Run(cfg, events, d, warm)
        n_params = sum(p.numel() for p in run.model.parameters())
        events.emit("start", world_size=d.world, device=str(d.device), params=n_params,
                    seconds=time.perf_counter() - called, data_seconds=run.data_seconds, env=fingerprint(d.device),
                    process_runs=warm.runs, weights_restored=warm.restored, config=cfg.model_dump(mode="json"))
        t_start = time.perf_counter()
        warmed = run.warm_up()
        if checkpoint is not None:
            run.restore(checkpoint)
        events.emit("warmup", seconds=time.perf_counter() - t_start, skipped=not warmed)
        status = run.run(stop)
    except InputError as e:
        events.emit("end", status="failed", error=str(e))
        raise
    except BaseException as e:
        events.emit("end", status="failed", error=f"{type(e).__name__}: {e}")
        raise
    else:
        if d.on:
            # gloo: a rank that tears down its sockets while a peer still reads the tail of the
            # last collective makes that peer abort at exit (seen in CI); meet first
            dist.barrier()
        last = dict(step=run.step, train_time_ms=run.train_time_ms, tokens=run.tokens)
        if run.cuda:
            last["peak_memory_mib"] = torch.cuda.max_memory_allocated() // 2**20
            run.print(f"peak memory allocated: {last['peak_memory_mib']} MiB "
                      f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")
        events.emit("end", status=status, **last)
    finally:
        events.close()
        if d.on and dist.is_initialized():
            dist.destroy_process_group()
    return status
