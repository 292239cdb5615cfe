"""Schedules are pure functions of the step; the record's values at known steps."""

import pytest

from trainer.config import MAX_ITERATIONS, ModelConfig, ScheduleConfig, load_config
from trainer.schedules import Schedules

RECORD = Schedules(ScheduleConfig(), ModelConfig())


def test_lr_is_stable_then_cools_down_linearly_to_final():
    N = 1695
    assert RECORD.lr_multiplier(0) == 1.0
    assert RECORD.lr_multiplier(int(0.55 * N) - 1) == 1.0
    assert RECORD.lr_multiplier(N - 1) == pytest.approx(0.1 + 0.9 * (1 / N) / 0.45)
    assert RECORD.lr_multiplier(N) == pytest.approx(0.1)


def test_record_window_grows_from_one_block_to_fourteen():
    # the record: next multiple of 128 of 1728 * progress, so 128 tokens at 0 and 1792 at the end
    assert RECORD.window_blocks(0) == 1
    assert RECORD.window_blocks(847) == 7  # 1728 * 847 / 1695 = 863.5 tokens -> 896
    assert RECORD.window_blocks(1695) == 14
    blocks = [RECORD.window_blocks(s) for s in range(1696)]
    assert blocks == sorted(blocks)


def test_momentum_warms_up_from_085_to_095_over_300_steps():
    assert RECORD.muon_momentum(0) == pytest.approx(0.85)
    assert RECORD.muon_momentum(150) == pytest.approx(0.90)
    assert RECORD.muon_momentum(300) == RECORD.muon_momentum(1000) == pytest.approx(0.95)


def test_stages_hold_until_their_fraction():
    cfg = load_config(
        "tiny",
        [
            "schedule.num_iterations=10",
            "schedule.batch=[{until: 0.5, tokens: 1024}, {until: 1.0, tokens: 2048}]",
            "schedule.window={kind: stages, stages: [{until: 0.3, tokens: 128}, {until: 1.0, tokens: 384}]}",
        ],
    )
    s = Schedules(cfg.schedule, cfg.model)
    assert [s.batch_tokens(i) for i in range(11)] == [1024] * 5 + [2048] * 6
    assert [s.window_blocks(i) for i in range(11)] == [1] * 3 + [3] * 8
    assert s.batch_shapes() == [(0, 1024, 512), (5, 2048, 512)]


def test_warmup_starts_above_zero_and_reaches_one():
    cfg = load_config("tiny", ["schedule.num_iterations=10", "schedule.lr={warmup_frac: 0.2, cooldown_frac: 0.5}"])
    s = Schedules(cfg.schedule, cfg.model)
    assert [s.lr_multiplier(i) for i in range(3)] == pytest.approx([0.5, 1.0, 1.0])


@pytest.mark.parametrize("steps", [7, 10, 33, 1000])
def test_batch_shapes_are_those_of_every_step(steps):
    cfg = load_config("tiny", [
        f"schedule.num_iterations={steps}",
        "schedule.batch=[{until: 0.3, tokens: 1024}, {until: 0.7, tokens: 2048}, {until: 1.0, tokens: 4096}]",
        "schedule.seq_len=[{until: 0.5, tokens: 256}, {until: 1.0, tokens: 512}]",
    ])
    s = Schedules(cfg.schedule, cfg.model)
    every = [(i, s.batch_tokens(i), s.seq_len(i)) for i in range(steps)]
    assert s.batch_shapes() == [row for k, row in enumerate(every) if k == 0 or every[k - 1][1:] != row[1:]]


@pytest.mark.timeout(5)  # walking 10^7 steps in Python takes tens of seconds
def test_batch_shapes_do_not_walk_the_steps():
    cfg = load_config("tiny", [f"schedule.num_iterations={MAX_ITERATIONS}"])
    shapes = Schedules(cfg.schedule, cfg.model).batch_shapes()
    assert shapes == [(0, cfg.schedule.batch[0].tokens, cfg.schedule.seq_len[0].tokens)]
