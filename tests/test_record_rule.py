"""`speedrun record check` and `speedrun record plan`: the record rule on a losses file, and the
chance that an attempt of N runs passes, checked against scipy and against simulation."""

import itertools
import json
import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis import record_plan
from analysis.losses_file import read_losses
from analysis.record_plan import (
    bootstrap_pass_probability,
    observed_losses,
    record_pass_probability,
    smallest_runs,
    track3_pass_probability,
)
from analysis.runs import Sweep, Trial
from analysis.stats import power, record_test
from orchestrator.cli_record import record_app
from trainer.errors import InputError

TARGET = 3.28
# 80 runs of the 2025-01-04 "Softer softcap" record (modded-nanogpt
# records/track_1_short/2025-01-04_SoftCap/README.md), which prints p=0.0001 (to 4 decimals),
# std 0.0019 and mean 3.2791 for them
SOFTCAP = [
    3.2798, 3.2804, 3.2837, 3.2808, 3.2782, 3.2801, 3.283, 3.2825, 3.2777, 3.2769, 3.2834, 3.2832, 3.2753,
    3.2809, 3.2778, 3.2801, 3.2799, 3.2804, 3.2765, 3.2792, 3.2786, 3.2792, 3.2801, 3.2762, 3.2803, 3.2784,
    3.2792, 3.2791, 3.2769, 3.279, 3.2784, 3.2775, 3.283, 3.2785, 3.2753, 3.2805, 3.2766, 3.2766, 3.2781,
    3.2819, 3.2754, 3.2827, 3.2803, 3.2784, 3.2802, 3.2794, 3.2765, 3.278, 3.2782, 3.278, 3.2816, 3.279,
    3.2771, 3.2791, 3.2768, 3.2781, 3.2794, 3.2798, 3.2785, 3.2804, 3.2777, 3.2765, 3.2796, 3.278, 3.2803,
    3.2793, 3.2793, 3.2788, 3.2797, 3.278, 3.2799, 3.2813, 3.2803, 3.2768, 3.2803, 3.2796, 3.28, 3.2796,
    3.2783, 3.278,
]
PASSING = [3.2781, 3.2776, 3.2790, 3.2785, 3.2779]  # p ≈ 0.0009
FAILING = [3.2795, 3.2772, 3.2801, 3.2768, 3.2790, 3.2779]  # p ≈ 0.016: close, but not below 0.01


def _check(tmp_path, text, *args):
    path = tmp_path / "losses.txt"
    path.write_text(text)
    return path, CliRunner().invoke(record_app, ["check", str(path), *args])


def _printed_p(output):
    return re.search(r"\bp=(\S+)", output).group(1)


def _scipy_p(losses, target=TARGET):
    return stats.ttest_1samp(losses, target, alternative="less").pvalue


# --- record check ---------------------------------------------------------------------------


@pytest.mark.parametrize("losses", [PASSING, FAILING, SOFTCAP])
def test_check_prints_scipys_p_value_to_four_significant_digits(tmp_path, losses):
    _, result = _check(tmp_path, "\n".join(map(str, losses)))
    assert _printed_p(result.output) == f"{_scipy_p(losses):.4g}"
    x = np.array(losses)
    assert f"n={len(x)}  mean={x.mean():.5f}  std={x.std(ddof=1):.5f}" in result.output


def test_check_reproduces_the_softcap_records_published_numbers(tmp_path):
    _, result = _check(tmp_path, "\n".join(map(str, SOFTCAP)))
    assert result.exit_code == 0
    assert f"{float(_printed_p(result.output)):.4f}" == "0.0001"
    assert "mean=3.2791" in result.output and "std=0.0019" in result.output
    assert "PASS: p=" in result.output and "< 0.01" in result.output


def test_check_exits_1_on_fail_and_says_why(tmp_path):
    _, result = _check(tmp_path, "\n".join(map(str, FAILING)))
    assert result.exit_code == 1
    assert f"FAIL: p={_scipy_p(FAILING):.4g} ≥ 0.01" in result.output


def test_check_exits_0_on_pass_and_honours_the_target(tmp_path):
    _, result = _check(tmp_path, "\n".join(map(str, FAILING)))
    assert result.exit_code == 1
    _, result = _check(tmp_path, "\n".join(map(str, FAILING)), "--target", "3.281")
    assert result.exit_code == 0
    assert _printed_p(result.output) == f"{_scipy_p(FAILING, 3.281):.4g}"


def test_comments_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "losses.txt"
    path.write_text("# attempt 3, 8xH100\n3.2781\n\n   \n3.2776  # seed 1\n# 3.3000 dropped\n3.2790\n")
    assert read_losses(path) == [3.2781, 3.2776, 3.2790]


@pytest.mark.parametrize("bad", ["3.27.9", "3.2781 3.2790", "loss=3.2781", "nan"])
def test_a_malformed_line_fails_with_the_file_its_line_number_and_text(tmp_path, bad):
    path, result = _check(tmp_path, f"# runs\n3.2781\n{bad}\n3.2790\n")
    assert result.exit_code == 2
    assert f"{path}:3:" in result.output and bad in result.output


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "3.2781\n"])
def test_fewer_than_two_losses_is_a_clear_error(tmp_path, text):
    _, result = _check(tmp_path, text)
    assert result.exit_code == 2
    assert "needs at least 2 runs" in result.output


def test_a_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(record_app, ["check", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2 and "no such file" in result.output


# --- record plan: exact probabilities against simulation ------------------------------------

SIMULATED = 200_000
CASES = [(3, 0.0014, 0.002), (10, 0.0014, 0.001), (24, 0.002, 0.0005), (2, 0.0014, 0.003), (5, 0.0014, -0.0005)]


def _simulated_attempts(n, sigma, delta, seed):
    return np.random.default_rng(seed).normal(TARGET - delta, sigma, size=(SIMULATED, n))


def _within_3_se(estimate, exact, draws):
    se = math.sqrt(max(exact * (1 - exact), 1e-6) / draws)
    return abs(estimate - exact) < 3 * se


@pytest.mark.parametrize(("n", "sigma", "delta"), CASES)
def test_record_rule_pass_probability_matches_simulated_attempts(n, sigma, delta):
    runs = _simulated_attempts(n, sigma, delta, seed=n)
    simulated = np.mean(stats.ttest_1samp(runs, TARGET, axis=1, alternative="less").pvalue < 0.01)
    assert _within_3_se(simulated, record_pass_probability(n, sigma, delta), SIMULATED)


@pytest.mark.parametrize(("n", "sigma", "delta"), CASES)
def test_track3_pass_probability_matches_simulated_attempts(n, sigma, delta):
    runs = _simulated_attempts(n, sigma, delta, seed=100 + n)
    simulated = np.mean((3.28 - runs.mean(axis=1)) * math.sqrt(n) >= 0.004)
    assert _within_3_se(simulated, track3_pass_probability(n, sigma, delta), SIMULATED)


def test_at_the_target_the_record_rule_passes_with_probability_alpha():
    assert record_pass_probability(7, 0.0014, 0.0) == pytest.approx(0.01, abs=1e-12)


@pytest.mark.parametrize(("n", "sigma", "delta"), CASES)
def test_both_one_sided_tails_add_up_to_the_two_sided_power_at_twice_alpha(n, sigma, delta):
    two_sided = power(delta, sigma, n, alpha=0.02, paired=True)
    assert record_pass_probability(n, sigma, delta) + record_pass_probability(n, sigma, -delta) == pytest.approx(
        two_sided, rel=1e-9, abs=1e-12)


def test_track3_rule_matches_its_readme_examples():
    # "for a single non-cherry-picked run, any val loss below 3.276 suffices, and for n=4
    # runs, any average below 3.278": with almost no noise those means pass half the time
    assert track3_pass_probability(1, 1e-9, 0.004) == pytest.approx(0.5)
    assert track3_pass_probability(4, 1e-9, 0.002) == pytest.approx(0.5)


@pytest.mark.parametrize("probability", [record_pass_probability, track3_pass_probability])
@pytest.mark.parametrize(("sigma", "delta"), [(0.0014, 0.001), (0.0019, 0.002), (0.0014, 0.0003)])
@pytest.mark.parametrize("goal", record_plan.GOALS)
def test_smallest_runs_is_the_first_n_that_reaches_the_goal(probability, sigma, delta, goal):
    n_min = 2 if probability is record_pass_probability else 1
    n = smallest_runs(lambda k: probability(k, sigma, delta), goal, n_min)
    assert probability(n, sigma, delta) >= goal
    assert n == n_min or probability(n - 1, sigma, delta) < goal


def test_no_number_of_runs_proves_a_mean_at_or_above_the_target():
    for delta in (0.0, -0.001):
        assert smallest_runs(lambda k, delta=delta: record_pass_probability(k, 0.0014, delta), 0.8, 2) is None


# --- record plan: bootstrap ----------------------------------------------------------------

OBSERVED = [3.2770, 3.2785, 3.2779, 3.2801]


def test_bootstrap_is_the_record_rule_applied_to_each_seeded_resample():
    n, resamples = 5, 2000
    estimate = bootstrap_pass_probability(OBSERVED, n, resamples=resamples, seed=3)
    draws = np.random.default_rng(3).integers(0, len(OBSERVED), size=(resamples, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples of one repeated value
        direct = np.mean([record_test([OBSERVED[i] for i in row]).passed for row in draws])
    assert estimate.probability == direct
    assert estimate.se == pytest.approx(math.sqrt(direct * (1 - direct) / resamples))


def test_bootstrap_agrees_with_every_resample_enumerated():
    n = 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exact = np.mean([record_test(list(draw)).passed for draw in itertools.product(OBSERVED, repeat=n)])
    estimate = bootstrap_pass_probability(OBSERVED, n)
    assert estimate.resamples == 10_000
    assert abs(estimate.probability - exact) < 3 * estimate.se


# --- record plan: the command --------------------------------------------------------------


def _plan(*args):
    return CliRunner().invoke(record_app, ["plan", *args])


def test_plan_prints_both_rules_at_n_and_the_runs_each_goal_needs():
    result = _plan("--sigma", "0.0014", "--delta", "0.001", "--runs", "12")
    assert result.exit_code == 0, result.output
    record_row = next(line for line in result.output.splitlines() if line.startswith("| record: t-test"))
    needed = [smallest_runs(lambda k: record_pass_probability(k, 0.0014, 0.001), g, 2) for g in record_plan.GOALS]
    cells = [c.strip() for c in record_row.strip("|").split("|")]
    assert cells[1:] == [f"{record_pass_probability(12, 0.0014, 0.001):.3f}", *map(str, needed)]
    for k in record_plan.RUNS_TABLE:
        p, z = record_pass_probability(k, 0.0014, 0.001), track3_pass_probability(k, 0.0014, 0.001)
        assert re.search(rf"\|\s+{k} \|\s+{p:.3f} \|\s+{z:.3f} \|", result.output)


def test_plan_json_holds_the_probabilities_the_table_prints():
    result = _plan("--sigma", "0.0014", "--delta", "0.001", "--runs", "12", "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["record"]["probability"]["12"] == pytest.approx(record_pass_probability(12, 0.0014, 0.001))
    assert got["track3"]["probability"]["12"] == pytest.approx(track3_pass_probability(12, 0.0014, 0.001))
    assert got["observed"] is None and got["bootstrap"] is None


def test_plan_without_from_needs_sigma_and_delta():
    result = _plan("--sigma", "0.0014")
    assert result.exit_code == 2 and "--sigma and --delta are required" in result.output


def _trial(number, arm, loss, status="completed"):
    return Trial(f"run{number}", number, status, loss, loss, 180.0, 200.0, searched={"arm": arm, "seed": number})


def _ablation(arms_losses, kind="ablation"):
    trials = [_trial(i * 10 + j, arm, loss) for i, (arm, losses) in enumerate(arms_losses.items())
              for j, loss in enumerate(losses)]
    trials.append(_trial(99, next(iter(arms_losses)), math.nan, status="failed"))
    return Sweep("gate", kind, "sqlite:///mlflow.db", "parent", "final_val_loss", 3.28, None, trials)


def test_observed_losses_default_to_the_baseline_arm_and_skip_failed_runs():
    sweep = _ablation({"baseline": OBSERVED, "no_gate": [3.2851, 3.2840]})
    assert observed_losses(sweep) == ("gate arm baseline", OBSERVED)
    assert observed_losses(sweep, "no_gate") == ("gate arm no_gate", [3.2851, 3.2840])
    assert observed_losses(_ablation({"record": OBSERVED}))[1] == OBSERVED  # an attempt without baseline
    with pytest.raises(InputError, match="no arm 'nope'; its arms: baseline, no_gate"):
        observed_losses(sweep, "nope")
    with pytest.raises(InputError, match="is a sweep, which has no arms"):
        observed_losses(_ablation({"baseline": OBSERVED}, kind="sweep"), "baseline")
    with pytest.raises(InputError, match="1 completed run"):
        observed_losses(_ablation({"baseline": [3.279]}))


def test_plan_from_an_ablation_bootstraps_its_baseline_and_defaults_to_its_noise(monkeypatch):
    sweep = _ablation({"baseline": OBSERVED, "no_gate": [3.2851, 3.2840]})
    monkeypatch.setattr("analysis.runs.load_sweep", lambda name, uri: sweep)
    result = _plan("--from", "gate", "--runs", "5")
    assert result.exit_code == 0, result.output
    x = np.array(OBSERVED)
    boot = bootstrap_pass_probability(OBSERVED, 5)
    assert f"run-to-run sigma {x.std(ddof=1):.5f}" in result.output
    assert f"delta {TARGET - x.mean():.5f}" in result.output
    assert re.search(rf"\| bootstrap: gate arm baseline, B=10000\s+\|\s+{boot.probability:.3f} ± {boot.se:.3f} \|",
                     result.output)
