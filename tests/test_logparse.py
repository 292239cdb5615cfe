"""`trainer.script.logparse` on hand-written lines in the formats of each era and track of the record's logs."""

from __future__ import annotations

import math

from trainer.script.logparse import StepLine, parse_peak_memory, parse_step


def test_parse_2024_val_line_in_ms():
    assert parse_step("step:0/1750 val_loss:10.8258 train_time:0ms step_avg:nanms").val_loss == 10.8258


def test_parse_2024_train_line_has_train_loss():
    got = parse_step("step:1/1750 train_loss:10.8258 train_time:24389ms step_avg:nanms")
    assert (got.step, got.total, got.val_loss, got.train_loss, got.train_time_ms) == (1, 1750, None, 10.8258, 24389.0)


def test_parse_2025_train_line_without_loss():
    assert parse_step("step:125/1393 train_time:17608ms step_avg:140.86ms") == StepLine(125, 1393, None, None,
                                                                                         17608.0, 140.86)


def test_parse_track3_seconds_become_ms():
    got = parse_step("step:3250/3250 val_loss:3.27699 train_time:1481.958s step_avg:511.02ms")
    assert (got.val_loss, got.step_avg_ms) == (3.27699, 511.02)
    assert math.isclose(got.train_time_ms, 1481958.0)


def test_parse_step_avg_in_seconds_becomes_ms():
    assert math.isclose(parse_step("step:10/20 train_time:5.0s step_avg:0.5s").step_avg_ms, 500.0)


def test_parse_unitless_time_is_ms():
    got = parse_step("step:7/20 train_time:700 step_avg:100")
    assert (got.train_time_ms, got.step_avg_ms) == (700.0, 100.0)


def test_parse_nan_step_avg_and_nan_loss():
    got = parse_step("step:2/8 val_loss:nan train_time:0.001s step_avg:nanms")
    assert math.isnan(got.val_loss) and math.isnan(got.step_avg_ms) and got.train_time_ms == 1.0


def test_parse_torchrun_tee_prefix():
    assert parse_step("[default0]:step:2/8 val_loss:3.5 train_time:5ms step_avg:2.50ms") == StepLine(
        2, 8, 3.5, None, 5.0, 2.5)


def test_parse_rank_prefix_with_seconds():
    assert parse_step("[rank0]: step:8/8 val_loss:3.28 train_time:1.5s step_avg:187.50ms").train_time_ms == 1500.0


def test_parse_extra_fields_are_ignored():
    got = parse_step("step:2850/2900 val_loss:3.27897 val_ema_loss:3.27001 train_time:2137.538s step_avg:750.01ms "
                     "ema_beta:0 ref_gamma:-0.075 extrap_rel:1.000e-03 handoff:keep")
    assert (got.step, got.total, got.val_loss) == (2850, 2900, 3.27897)
    assert math.isclose(got.train_time_ms, 2137538.0)


def test_parse_surrounding_whitespace():
    assert parse_step("  step:3/8 train_time:12ms step_avg:4.00ms\n").train_time_ms == 12.0


def test_line_without_train_time_is_not_a_step_line():
    assert parse_step("step:3/8 val_loss:3.5") is None


def test_prose_with_step_counter_is_not_a_step_line():
    assert parse_step("step:3/8 is how the log counts") is None


def test_unreadable_train_time_is_not_a_step_line():
    assert parse_step("step:3/8 train_time:{training_time_ms:.0f}ms step_avg:2ms") is None


def test_source_code_in_log_is_not_a_step_line():
    line = 'print0(f"step:{step}/{train_steps} val_loss:{val_loss:.5f} train_time:{training_time:.3f}s", console=True)'
    assert parse_step(line) is None


def test_other_step_lines_of_track3_logs_are_not_step_lines():
    assert parse_step("tailavg step:2720 tau:150 lambda:0.4 val_loss:3.27909") is None
    assert parse_step("tail_ema applied step:2720 tau:150 lambda:0.6 start_step:2000") is None


def test_llmc_log_line_is_not_a_step_line():
    assert parse_step("s:9536 tel:3.275959") is None


def test_text_before_step_that_is_not_a_prefix_is_not_a_step_line():
    assert parse_step("loaded step:3/8 train_time:12ms step_avg:4.00ms") is None


def test_parse_peak_memory_line():
    assert parse_peak_memory("peak memory allocated: 29892 MiB reserved: 45456 MiB") == 29892


def test_parse_peak_memory_ignores_step_line():
    assert parse_peak_memory("step:1/2 train_time:1ms step_avg:1.00ms") is None
