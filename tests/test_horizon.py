"""A shorter horizon compresses the record's schedules: every breakpoint stays at the same fraction
of the run, and the run ends at the final LR multiplier."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from trainer.config import load_config
from trainer.errors import InputError
from trainer.horizon import at_horizon
from trainer.schedules import Schedules

RECORD = load_config("gpt2_124m", ["schedule.batch=[{until: 0.3, tokens: 131072}, {until: 1.0, tokens: 393216}]",
                                   "schedule.window={kind: stages, stages: [{until: 0.5, tokens: 1024}, {until: 1.0, tokens: 2048}]}"])
FRACTIONS = [0.125, 0.25, 0.5, 1.0]


def curves(cfg, step_of):
    s = Schedules(cfg.schedule, cfg.model)
    return [(round(s.lr_multiplier(step_of(x)), 6), s.window_blocks(step_of(x)), s.batch_tokens(step_of(x)),
             round(s.muon_momentum(step_of(x)), 2)) for x in (0.0, 0.1, 0.29, 0.31, 0.49, 0.51, 0.6, 0.99)]


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_every_breakpoint_stays_at_the_same_fraction_of_the_run(fraction):
    short = at_horizon(RECORD, fraction)
    n, m = RECORD.schedule.num_iterations, short.schedule.num_iterations
    full = curves(RECORD, lambda x: round(x * n))
    compressed = curves(short, lambda x: round(x * m))
    assert [c[1:] for c in compressed] == [c[1:] for c in full]  # windows, batches, momentum (2 decimals)
    for (lr_short, *_), (lr_full, *_) in zip(compressed, full):
        assert lr_short == pytest.approx(lr_full, abs=2 / m)  # one step of cooldown, at most


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_a_compressed_run_ends_cooled_down(fraction):
    short = at_horizon(RECORD, fraction)
    s = Schedules(short.schedule, short.model)
    assert s.lr_multiplier(short.schedule.num_iterations) == pytest.approx(short.schedule.lr.final)
    assert short.schedule.num_iterations == round(RECORD.schedule.num_iterations * fraction)


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_validation_keeps_its_interval_in_steps(fraction):
    assert at_horizon(RECORD, fraction).eval.every == RECORD.eval.every  # a shorter run validates less often


def test_a_horizon_outside_the_run_is_refused():
    for bad in (0, -0.5, 1.5):
        with pytest.raises(InputError, match="expected a fraction of the run"):
            at_horizon(RECORD, bad)


def test_the_trainer_cli_runs_at_a_horizon():
    out = subprocess.run([sys.executable, "-m", "trainer", "--config", "gpt2_124m", "--horizon", "0.5", "--print-config"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    schedule = yaml.safe_load(out.stdout)["schedule"]
    assert schedule["num_iterations"] == round(load_config("gpt2_124m").schedule.num_iterations / 2)
    assert schedule["muon_momentum"]["steps"] == 150


PRESET = load_config("gpt2_124m")  # the record's own schedules: a linear window, a momentum warm-up counted in steps


def breakpoints(cfg):
    """Where the cooldown starts and the momentum warm-up ends (fractions of the run), the window
    along the run, and the LR multiplier at the last step."""
    s, n = Schedules(cfg.schedule, cfg.model), cfg.schedule.num_iterations
    cooldown = next(k for k in range(n + 1) if s.lr_multiplier(k) < 1) / n
    warm = next(k for k in range(n + 1) if s.muon_momentum(k) >= cfg.schedule.muon_momentum.end) / n
    window = [s.window_blocks(round(x * n)) for x in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return cooldown, warm, window, s.lr_multiplier(n)


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_the_preset_s_own_schedules_keep_their_breakpoints_at_any_horizon(fraction):
    short = at_horizon(PRESET, fraction)
    m = short.schedule.num_iterations
    cooldown, warm, window, _ = breakpoints(PRESET)
    short_cooldown, short_warm, short_window, _ = breakpoints(short)
    assert short_cooldown == pytest.approx(cooldown, abs=1 / m)
    assert short_warm == pytest.approx(warm, abs=1 / m)
    assert all(abs(a - b) <= 1 for a, b in zip(short_window, window))  # one 128-token block of rounding at most


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_the_preset_at_any_horizon_ends_at_the_final_lr_multiplier(fraction):
    assert breakpoints(at_horizon(PRESET, fraction))[3] == pytest.approx(PRESET.schedule.lr.final)
