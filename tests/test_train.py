"""Specification of one training run end to end: `python -m trainer` and torchrun as real processes.

Each test reads a run's JSON-line events file (or stdout for `--events -`), its exit code and its
console. Runs are as short as the behaviour allows; tests about the same 6-step run share it
(the module-scoped `short_run`). Multi-process runs use gloo on CPU with one thread per rank.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainer.config import load_config
from trainer.data import BOS_ID, HEADER_BYTES, write_shard

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"  # CI keeps a copy of shared/ beside the repo
FIXTURE_VAL_TOKENS = 131_072  # tokens in trainer/fixtures/fixture_val_000000.bin

# 6 steps, validation at 0, 3 and 6 on 4 sequences, 4 micro-batches of 256 tokens per step:
# with 2 ranks each sums 2 of them, so the gradient reduction order really differs from 1 rank.
SHORT = [
    "--set", "schedule.num_iterations=6",
    "--set", "eval.every=3",
    "--set", "data.val_tokens=4096",
    "--set", "schedule.seq_len=[{until: 1.0, tokens: 256}]",
]  # fmt: skip

# 1 rank and 2 gloo ranks differ only in float summation order (gradients, validation sums) and
# in what that does to Muon's bf16 Newton-Schulz. Observed over 6 steps for seeds 0-2: at most
# 1.7e-4 nats (train loss), 7.7e-5 (val loss). A step of training moves the loss by ~0.3 nats.
RANKS_ATOL = 1e-3


# --- running the trainer ------------------------------------------------------------------


def _no_nan(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def parse_events(text: str) -> list[dict[str, Any]]:
    """Strict JSON lines: every line one object, no NaN/Infinity literals."""
    return [json.loads(line, parse_constant=_no_nan) for line in text.splitlines()]


@dataclass
class TrainerRun:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def val_losses(self) -> dict[int, float]:
        return {e["step"]: e["val_loss"] for e in self.of("val")}

    def train_losses(self) -> dict[int, float]:
        return {e["step"]: e["train_loss"] for e in self.of("train")}

    @property
    def end(self) -> dict[str, Any]:
        return self.events[-1]


def trainer_command(nproc: int = 1) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "trainer"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "trainer"]


def env(nproc: int = 1) -> dict[str, str]:
    """The test's environment; one thread per rank when several ranks share the cores."""
    out = dict(os.environ, PYTHONUNBUFFERED="1")
    if nproc > 1:
        out["OMP_NUM_THREADS"] = "1"
    return out


def run_trainer(*args: str, events: Path | None = None, nproc: int = 1, timeout: float = 300) -> TrainerRun:
    """Run the trainer to the end (from the repo root, so the working tree's code runs)."""
    cmd = trainer_command(nproc) + list(args) + (["--events", str(events)] if events else [])
    proc = subprocess.run(cmd, cwd=REPO, env=env(nproc), capture_output=True, text=True, timeout=timeout)
    evs = parse_events(events.read_text()) if events and events.exists() else []
    return TrainerRun(proc.returncode, proc.stdout, proc.stderr, evs)


def assert_clean_input_error(run: TrainerRun, *patterns: str) -> None:
    """Exit code 2 and a short `error:` message matching each pattern, no traceback."""
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    err = run.stderr.strip()
    assert err.startswith("error: "), err
    assert len(err.splitlines()) <= 3, err
    for pattern in patterns:
        assert re.search(pattern, err), f"{pattern!r} not in {err!r}"


# --- runs shared by several tests -----------------------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> TrainerRun:
    """`tiny` cut to SHORT, one rank: the reference for determinism, ranks and events."""
    events = tmp_path_factory.mktemp("short") / "events.jsonl"
    run = run_trainer("--config", "tiny", *SHORT, events=events)
    assert run.returncode == 0, run.stderr
    return run


# --- learning ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_preset_lowers_val_loss_by_3_nats_in_its_60_steps(tmp_path: Path) -> None:
    # its wall time (about 40 s on 2 idle cores) is a benchmark: docs/benchmarks.md
    run = run_trainer("--config", "tiny", events=tmp_path / "events.jsonl")  # as shipped: 60 steps, the fixture
    assert run.returncode == 0, run.stderr
    val = run.val_losses()
    assert sorted(val) == [0, 20, 40, 60]
    assert val[0] - val[60] >= 3.0, val


@pytest.mark.slow
def test_tiny_lowers_val_loss_by_3_nats_on_the_proxy_corpus(tmp_path: Path) -> None:
    train, val = SHARED_DATA / "proxy_train_000001.bin", SHARED_DATA / "proxy_val_000000.bin"
    if not (train.is_file() and val.is_file()):
        pytest.skip(f"proxy corpus not found at {SHARED_DATA.resolve()} (shared/ is kept beside the repo)")
    run = run_trainer(
        "--config", "tiny",
        "--set", f"data.train_files={train}",
        "--set", f"data.val_files={val}",
        "--set", "schedule.num_iterations=30",
        "--set", "eval.every=30",
        events=tmp_path / "events.jsonl",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    val_losses = run.val_losses()
    assert val_losses[0] - val_losses[30] >= 3.0, val_losses


def test_same_seed_gives_identical_losses(short_run: TrainerRun, tmp_path: Path) -> None:
    again = run_trainer("--config", "tiny", *SHORT, events=tmp_path / "events.jsonl")
    assert again.returncode == 0, again.stderr
    assert again.val_losses() == short_run.val_losses()
    assert again.train_losses() == short_run.train_losses()


# Every technique of the record switched off (or to its alternative) on its own, and all at once.
TECHNIQUES_OFF = {
    "value_embeds": ["model.value_embeds=false"],
    "unet_skips": ["model.unet_skips=false"],
    "x0_mix": ["model.x0_mix=false"],
    "embed_norm": ["model.embed_norm=false"],
    "qk_norm": ["model.qk_norm=false"],
    "rotary_none": ["model.rotary=none"],
    "rotary_full": ["model.rotary=full"],
    "attn_gate": ["model.attn_gate=false"],
    "relu_squared": ["model.relu_squared=false"],
    "zero_init_outputs": ["model.zero_init_outputs=false"],
    "logit_softcap": ["model.logit_softcap=0"],
    "doc_masking": ["model.doc_masking=false"],
    "long_short_windows": ["model.long_short_windows=false"],
    "skip_attention_layers": ["model.skip_attention_layers=[]"],
    "attn_scale": ["model.attn_scale=null"],
    "fp8_head": ["model.fp8_head=false"],  # CPU ignores it: the switch must still be accepted
}
TECHNIQUES_OFF["all"] = [s for sets in TECHNIQUES_OFF.values() for s in sets if s != "model.rotary=full"]


@pytest.fixture
def keep_sigterm_handler() -> Iterator[None]:
    """An in-process run installs its own SIGTERM handler; give pytest its own back."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("overrides", TECHNIQUES_OFF.values(), ids=TECHNIQUES_OFF.keys())
def test_technique_switched_off_trains_to_completion(
    overrides: list[str], tmp_path: Path, keep_sigterm_handler: None
) -> None:
    from trainer.train import train  # in process: one interpreter start-up for all switches

    quick = ["schedule.num_iterations=2", "eval.every=0", "data.val_tokens=1024", "runtime.warmup_steps=0"]
    cfg = load_config("tiny", quick + overrides)
    events = tmp_path / "events.jsonl"
    assert train(cfg, str(events)) == "completed"
    run = TrainerRun(0, "", "", parse_events(events.read_text()))
    assert run.end["event"] == "end" and run.end["status"] == "completed"
    losses = [*run.train_losses().values(), *run.val_losses().values()]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses), losses


# --- ranks ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank(short_run: TrainerRun, tmp_path: Path) -> None:
    two = run_trainer("--config", "tiny", *SHORT, events=tmp_path / "events.jsonl", nproc=2)
    assert two.returncode == 0, two.stderr
    assert two.of("start")[0]["world_size"] == 2
    for mine, ref in ((two.val_losses(), short_run.val_losses()), (two.train_losses(), short_run.train_losses())):
        assert mine.keys() == ref.keys()
        assert mine == pytest.approx(ref, abs=RANKS_ATOL, rel=0)  # exact equality would be luck: see RANKS_ATOL
    assert [e["tokens"] for e in two.of("train")] == [e["tokens"] for e in short_run.of("train")]


BATCH_OF_ONE_SEQUENCE = ["--set", "schedule.batch=[{until: 1.0, tokens: 512}]"]  # seq_len 512: 1 per step


def test_speedrun_train_rejects_a_batch_that_cannot_be_split_over_its_ranks() -> None:
    speedrun = [sys.executable, "-m", "orchestrator.cli"]  # the `speedrun` entry point
    cmd = [*speedrun, "train", "--config", "tiny", *BATCH_OF_ONE_SEQUENCE, "--nproc", "2"]
    proc = subprocess.run(cmd, cwd=REPO, env=env(2), capture_output=True, text=True, timeout=120)
    assert_clean_input_error(
        TrainerRun(proc.returncode, proc.stdout, proc.stderr, []),
        r"schedule\.batch gives 512 tokens, not divisible by 2 rank\(s\) x schedule\.seq_len 512",
    )


@pytest.mark.slow
def test_each_torchrun_rank_rejects_a_batch_that_cannot_be_split_over_the_ranks() -> None:
    run = run_trainer("--config", "tiny", *BATCH_OF_ONE_SEQUENCE, nproc=2)
    # torchrun itself exits 1 for any failed rank; the ranks exit 2 with the trainer's message.
    assert run.returncode != 0
    message = "error: at step 0 schedule.batch gives 512 tokens, not divisible by 2 rank(s) x schedule.seq_len 512"
    assert run.stderr.count(message) == 2  # both ranks write to one stderr: lines may interleave


# --- checkpoints --------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_continues_with_exactly_the_same_losses(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    checkpointing = ["--set", "runtime.checkpoint_every=3", "--set", f"runtime.checkpoint_dir={ckpt}"]
    full = run_trainer("--config", "tiny", *SHORT, *checkpointing, events=tmp_path / "full.jsonl")
    assert full.returncode == 0, full.stderr
    assert [(e["step"], e["path"]) for e in full.of("checkpoint")] == [
        (3, str(ckpt / "step_000003")),
        (6, str(ckpt / "step_000006")),
    ]
    resumed = run_trainer(
        "--config", "tiny", *SHORT, "--resume", str(ckpt / "step_000003"), events=tmp_path / "resumed.jsonl"
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    # Validation at step 3 runs again; train events carry the step they end at: 4, 5, 6.
    assert resumed.val_losses() == {step: x for step, x in full.val_losses().items() if step >= 3}
    assert resumed.train_losses() == {step: x for step, x in full.train_losses().items() if step > 3}
    assert sorted(resumed.train_losses()) == [4, 5, 6]
    assert [e["tokens"] for e in resumed.of("train")] == [e["tokens"] for e in full.of("train")[3:]]


# 3 steps and a checkpoint at the end: what the tests of bad checkpoints break
CHECKPOINTED = [
    "--config", "tiny",
    "--set", "schedule.num_iterations=3",
    "--set", "eval.every=3",
    "--set", "data.val_tokens=2048",
    "--set", "schedule.seq_len=[{until: 1.0, tokens: 256}]",
]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint (step_000003) of a CHECKPOINTED run."""
    root = tmp_path_factory.mktemp("ckpt")
    run = run_trainer(*CHECKPOINTED, "--set", "runtime.checkpoint_every=3", "--set", f"runtime.checkpoint_dir={root}")
    assert run.returncode == 0, run.stderr
    return root / "step_000003"


class TouchOnLoad:
    """Unpickled by a plain pickle loader, this creates `path`: code a crafted checkpoint runs."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_crafted_checkpoint_is_refused_and_its_code_never_runs(checkpoint: Path, tmp_path: Path) -> None:
    crafted = tmp_path / "step_000003"
    shutil.copytree(checkpoint, crafted)
    import torch

    torch.save({"model": TouchOnLoad(tmp_path / "proof"), "adam": {}}, tmp_path / "proof.pt")
    torch.load(tmp_path / "proof.pt", weights_only=False)
    assert (tmp_path / "proof").exists()  # the crafted file is a real exploit for a plain loader
    marker = tmp_path / "pwned"
    torch.save({"model": TouchOnLoad(marker), "adam": {}}, crafted / "state.pt")
    run = run_trainer(*CHECKPOINTED, "--resume", str(crafted))
    assert_clean_input_error(run, re.escape(f"--resume {crafted / 'state.pt'}: holds more than tensors and plain data"))
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not marker.exists()


def break_checkpoint(path: Path, how: str) -> str:
    """Break the checkpoint copy at `path` the way `how` names; the file its error must name."""
    import torch

    if how == "truncated_state":
        data = (path / "state.pt").read_bytes()
        (path / "state.pt").write_bytes(data[: len(data) // 2])
        return "state.pt: truncated or not a checkpoint file"
    if how == "empty_rank_file":
        (path / "rank0.pt").write_bytes(b"")
        return "rank0.pt: truncated or not a checkpoint file"
    if how == "meta_not_json":
        (path / "meta.json").write_text('{"step": 3,')
        return "meta.json: not a checkpoint's meta.json"
    if how == "meta_without_stream":
        meta = json.loads((path / "meta.json").read_text())
        del meta["stream"]
        (path / "meta.json").write_text(json.dumps(meta))
        return "meta.json: not a checkpoint's meta.json (no stream)"
    assert how == "state_of_another_model"
    torch.save({"model": {"w": torch.zeros(3)}, "adam": {}}, path / "state.pt")
    return ": its state does not fit this run (RuntimeError: Error(s) in loading state_dict"


@pytest.mark.parametrize("how", ["truncated_state", "empty_rank_file", "meta_not_json", "meta_without_stream",
                                 "state_of_another_model"])
def test_a_malformed_checkpoint_exits_2_with_one_error_line_naming_its_file(checkpoint: Path, tmp_path: Path,
                                                                              how: str) -> None:
    broken = tmp_path / "step_000003"
    shutil.copytree(checkpoint, broken)
    expected = break_checkpoint(broken, how)
    run = run_trainer(*CHECKPOINTED, "--resume", str(broken))
    assert_clean_input_error(run, re.escape(f"--resume {broken}") + r"\S*" + re.escape(expected))
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


# --- bad input ----------------------------------------------------------------------------------


def good_tokens(n: int = 4096) -> np.ndarray:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, BOS_ID, size=n)
    tokens[::512] = BOS_ID
    return tokens


def corrupt(path: Path, offset: int, data: bytes) -> Path:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)
    return path


def shard(tmp_path: Path, how: str) -> Path:
    """A small shard written by write_shard, then broken in the way `how` names."""
    path = tmp_path / f"{how}_000001.bin"
    write_shard(path, good_tokens())
    if how == "bad_magic":
        corrupt(path, 0, np.int32(1234).tobytes())
    elif how == "bad_version":
        corrupt(path, 4, np.int32(7).tobytes())
    elif how == "size_disagrees_with_header":
        with path.open("ab") as f:
            f.write(b"\0\0")
    elif how == "token_id_outside_vocab":
        corrupt(path, HEADER_BYTES + 2 * 100, np.uint16(60000).tobytes())
    return path


def bad_input(tmp: Path, name: str) -> tuple[list[str], list[str]]:
    """(arguments, patterns its error message must match) for the bad input `name`."""
    if name in ("bad_magic", "bad_version", "size_disagrees_with_header", "token_id_outside_vocab"):
        path = shard(tmp, name)
        named = re.escape(str(path)) + ": "
        expected = {
            "bad_magic": r"bad magic number 1234 \(expected 20240520\)",
            "bad_version": r"unsupported shard version 7 \(expected 1\)",
            "size_disagrees_with_header": r"header says 4096 tokens \(9216 bytes\) but the file has 9218 bytes",
            "token_id_outside_vocab": r"token id 60000 is out of range for vocab size 50257",
        }[name]
        return ["--set", f"data.train_files={path}"], [named + expected]
    if name == "glob_matching_nothing":
        glob = str(tmp / "nothing_*.bin")
        return ["--set", f"data.train_files={glob}"], [rf"data\.train_files: pattern '{re.escape(glob)}' matches no"]
    if name == "resume_from_empty_dir":
        return ["--resume", str(tmp)], [rf"--resume {re.escape(str(tmp))}: no complete checkpoint there"]
    return {
        "unknown_key": (
            ["--set", "optim.muon_lrr=0.04"],
            [r"--set optim\.muon_lrr=0\.04: unknown key 'optim\.muon_lrr'; did you mean 'optim\.muon_lr'\?"],
        ),
        "wrongly_typed_value": (
            ["--set", "optim.muon_lr=fast"],
            [r"--set optim\.muon_lr=fast: optim\.muon_lr: Input should be a valid number", r"\(got 'fast'\)"],
        ),
        "stage_until_not_increasing": (
            ["--set", "schedule.batch=[{until: 0.5, tokens: 1024}, {until: 0.5, tokens: 2048}]"],
            [r"schedule\.batch: .*'until' fractions must strictly increase, got \[0\.5, 0\.5\]"],
        ),
        "batch_not_divisible_by_ranks_x_seq_len": (
            ["--set", "schedule.batch=[{until: 1.0, tokens: 768}]"],
            [r"schedule\.batch gives 768 tokens, not divisible by 1 rank\(s\) x schedule\.seq_len 512"],
        ),
        "val_tokens_beyond_val_files": (
            ["--set", f"data.val_tokens={2 * FIXTURE_VAL_TOKENS}"],
            [rf"data\.val_tokens={2 * FIXTURE_VAL_TOKENS} needs .* data\.val_files hold only {FIXTURE_VAL_TOKENS}"],
        ),
    }[name]


BAD_INPUTS = [
    "glob_matching_nothing",
    "bad_magic",
    "bad_version",
    "size_disagrees_with_header",
    "token_id_outside_vocab",
    "unknown_key",
    "wrongly_typed_value",
    "stage_until_not_increasing",
    "batch_not_divisible_by_ranks_x_seq_len",
    "val_tokens_beyond_val_files",
    "resume_from_empty_dir",
]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_exits_2_with_a_short_error_naming_it(name: str, tmp_path: Path) -> None:
    args, patterns = bad_input(tmp_path, name)
    run = run_trainer("--config", "tiny", "--set", "schedule.num_iterations=2", *args)
    assert_clean_input_error(run, *patterns)


# --- how a run ends ------------------------------------------------------------------------------


def test_non_finite_loss_ends_diverged_with_exit_code_3(tmp_path: Path) -> None:
    run = run_trainer(
        "--config", "tiny",
        "--set", "schedule.num_iterations=10",
        "--set", "eval.every=0",
        "--set", "data.val_tokens=1024",
        "--set", "optim.adam_lr=1e6",
        "--set", "optim.muon_lr=1e6",
        events=tmp_path / "events.jsonl",
    )  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert run.end["event"] == "end" and run.end["status"] == "diverged"
    last = run.of("train")[-1]
    assert last["train_loss"] is None  # NaN/inf, written as JSON null
    assert run.end["step"] == last["step"] < 10
    assert run.end["train_time_ms"] == pytest.approx(last["train_time_ms"])


@pytest.mark.slow
def test_sigterm_stops_at_the_next_step_with_exit_code_4(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    cmd = trainer_command() + ["--config", "tiny", "--set", "data.val_tokens=4096", "--events", str(events)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while '"event": "train"' not in (events.read_text() if events.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, "no train event"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = TrainerRun(code, "", proc.stderr.read(), parse_events(events.read_text()))
    assert code == 4, run.stderr
    assert waited < 5.0, f"exited {waited:.1f} s after SIGTERM"
    assert run.end["event"] == "end" and run.end["status"] == "stopped"
    assert run.end["step"] == run.of("train")[-1]["step"] < 60
    assert run.end["train_time_ms"] >= run.of("train")[-1]["train_time_ms"]


# --- events and console -----------------------------------------------------------------------


def test_events_are_start_then_train_every_step_and_val_then_one_end(short_run: TrainerRun) -> None:
    kinds = [e["event"] for e in short_run.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1
    assert short_run.end["status"] == "completed" and short_run.end["step"] == 6
    train = short_run.of("train")
    assert [e["step"] for e in train] == [1, 2, 3, 4, 5, 6]
    assert [e["tokens"] for e in train] == [1024 * s for s in range(1, 7)]
    for e in train:
        assert math.isfinite(e["train_loss"]) and e["train_time_ms"] > 0
    val = short_run.of("val")
    assert [(e["step"], e["tokens"]) for e in val] == [(0, 0), (3, 3072), (6, 6144)]
    for e in val:
        assert set(e) >= {"step", "val_loss", "train_time_ms", "tokens"} and math.isfinite(e["val_loss"])
    times = [e["train_time_ms"] for e in short_run.events if "train_time_ms" in e]
    assert times == sorted(times)  # the training clock only moves forward


def test_without_the_initial_validation_a_run_validates_at_its_interval_only(short_run: TrainerRun, tmp_path: Path) -> None:
    run = run_trainer("--config", "tiny", *SHORT, "--set", "eval.at_start=false", events=tmp_path / "events.jsonl")
    assert run.returncode == 0, run.stderr
    assert run.val_losses() == {step: loss for step, loss in short_run.val_losses().items() if step > 0}


def test_console_shows_the_records_val_lines(short_run: TrainerRun) -> None:
    record_line = r"^step:(\d+)/6 val_loss:(\d+\.\d{4}) train_time:\d+ms step_avg:\d+\.\d\dms$"
    lines = re.findall(record_line, short_run.stdout, re.MULTILINE)
    assert [(int(step), float(loss)) for step, loss in lines] == [
        (step, round(loss, 4)) for step, loss in short_run.val_losses().items()
    ]


def test_events_dash_writes_pure_json_lines_on_stdout() -> None:
    run = run_trainer(
        "--config", "tiny",
        "--set", "schedule.num_iterations=1",
        "--set", "data.val_tokens=1024",
        "--events", "-",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    events = parse_events(run.stdout)  # every stdout line is a JSON object
    assert [e["event"] for e in events] == ["start", "warmup", "val", "train", "val", "end"]
    assert "step:1/1 val_loss:" in run.stderr  # the console moved to stderr


@pytest.mark.parametrize(
    "cmd",
    [["-m", "trainer", "--help"], ["-m", "orchestrator.cli", "train", "--help"]],
    ids=["python -m trainer", "speedrun train"],
)
def test_help_shows_an_example(cmd: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, *cmd], cwd=REPO, env=dict(env(), COLUMNS="200", NO_COLOR="1"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    example = r"(?i)examples?:\s*(python -m trainer|speedrun train) --config tiny"
    assert re.search(example, proc.stdout), proc.stdout
