"""Ablation and record statistics: scipy's numbers, textbook examples, exact t-test power."""

import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats import (
    RECORD_P_THRESHOLD,
    compare,
    detectable_effect,
    holm,
    power,
    record_test,
    seeds_needed,
    summarize,
)

# final val losses of a speedrun-like ablation: 8 baseline seeds, a variant on 6 of them
BASELINE = [3.2781, 3.2795, 3.2768, 3.2802, 3.2779, 3.2790, 3.2774, 3.2797]
VARIANT = [3.2770, 3.2781, 3.2765, 3.2784, 3.2772, 3.2779]

# Student (1908), "The probable error of a mean", Biometrika 6: extra hours of sleep of
# 10 patients under two drugs (R's `sleep` data set, groups 1 and 2, by patient)
SLEEP_A = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_B = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

TIGHT = dict(rel=1e-9, abs=1e-9)


def test_summarize_matches_numpy_and_the_t_interval():
    x = np.array(BASELINE)
    sem = x.std(ddof=1) / math.sqrt(len(x))
    half = stats.t.ppf(0.975, len(x) - 1) * sem
    s = summarize(BASELINE)
    assert s.n == 8
    assert (s.mean, s.std, s.sem) == pytest.approx((x.mean(), x.std(ddof=1), sem), **TIGHT)
    assert (s.ci_low, s.ci_high) == pytest.approx((x.mean() - half, x.mean() + half), **TIGHT)
    assert (s.min, s.max) == (x.min(), x.max())


def test_summarize_of_one_value_has_nan_spread_not_an_error():
    s = summarize([3.279])
    assert (s.n, s.mean, s.min, s.max) == (1, 3.279, 3.279, 3.279)
    assert all(math.isnan(v) for v in (s.std, s.sem, s.ci_low, s.ci_high))


def test_summarize_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="non-empty"):
        summarize([])


def test_paired_comparison_matches_scipy_and_the_ci_of_the_differences():
    b, v = np.array(BASELINE[:6]), np.array(VARIANT)
    d = v - b
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    c = compare(list(b), list(v), paired=True)
    assert c.n_pairs == 6
    assert c.p_paired == pytest.approx(stats.ttest_rel(v, b).pvalue, **TIGHT)
    assert c.difference == pytest.approx(d.mean(), **TIGHT)
    assert (c.ci_low, c.ci_high) == pytest.approx((d.mean() - half, d.mean() + half), **TIGHT)


def test_welch_comparison_matches_scipy_with_the_welch_satterthwaite_df():
    b, v = np.array(BASELINE), np.array(VARIANT)
    vb, vv = b.var(ddof=1) / len(b), v.var(ddof=1) / len(v)
    df = (vb + vv) ** 2 / (vb**2 / (len(b) - 1) + vv**2 / (len(v) - 1))
    diff = v.mean() - b.mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(vb + vv)
    c = compare(BASELINE, VARIANT)
    assert c.p_welch == pytest.approx(stats.ttest_ind(v, b, equal_var=False).pvalue, **TIGHT)
    assert c.difference == pytest.approx(diff, **TIGHT)
    assert (c.ci_low, c.ci_high) == pytest.approx((diff - half, diff + half), **TIGHT)


def test_student_sleep_data_paired_t_test():
    # R, t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9,
    # p-value = 0.002833, 95% CI of group 1 - group 2 (-2.4598858, -0.7001142)
    c = compare(SLEEP_A, SLEEP_B, paired=True)
    assert c.difference == pytest.approx(1.58)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.7001142, 2.4598858), abs=1e-7)
    sem = (c.ci_high - c.difference) / stats.t.ppf(0.975, 9)
    assert -c.difference / sem == pytest.approx(-4.0621, abs=1e-4)
    assert c.p_paired == pytest.approx(0.002833, abs=1e-6)


def test_student_sleep_data_welch_t_test():
    # R, t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939,
    # 95% CI of group 1 - group 2 (-3.3654832, 0.2054832)
    c = compare(SLEEP_A, SLEEP_B)
    assert c.p_welch == pytest.approx(0.07939, abs=1e-5)
    assert (c.ci_low, c.ci_high) == pytest.approx((-0.2054832, 3.3654832), abs=1e-7)


def test_seed_keyed_arms_pair_on_their_common_seeds_whatever_the_order():
    baseline = {0: 3.2781, 1: 3.2795, 2: 3.2768, 3: 3.2802}
    variant = {3: 3.2790, 1: 3.2781, 0: 3.2770, 9: 3.2700}  # seed 9 has no baseline
    c = compare(baseline, variant)
    by_position = compare([3.2781, 3.2795, 3.2802], [3.2770, 3.2781, 3.2790], paired=True)
    assert (c.n_pairs, c.n_baseline, c.n_variant) == (3, 4, 4)
    expected = (by_position.difference, by_position.p_paired)
    assert (c.difference, c.p_paired) == pytest.approx(expected)


def test_the_welch_test_uses_every_seed_of_each_arm_even_when_paired():
    c = compare({0: 3.0, 1: 3.1, 2: 3.3}, {1: 3.0, 2: 3.2, 7: 3.4})
    welch = stats.ttest_ind([3.0, 3.2, 3.4], [3.0, 3.1, 3.3], equal_var=False)
    assert c.p_welch == pytest.approx(welch.pvalue)


def test_sequences_are_not_paired_unless_the_caller_says_so():
    c = compare(SLEEP_A, SLEEP_B)
    assert c.p_paired is None and c.n_pairs is None


def test_paired_false_ignores_the_seeds():
    c = compare(dict(enumerate(SLEEP_A)), dict(enumerate(SLEEP_B)), paired=False)
    assert c.p_paired is None
    assert c.ci_low == pytest.approx(compare(SLEEP_A, SLEEP_B).ci_low)


def test_one_seed_per_arm_gives_nan_tests_not_an_error():
    c = compare({0: 3.279}, {0: 3.278})
    assert c.difference == pytest.approx(-0.001)
    assert all(math.isnan(v) for v in (c.p_paired, c.p_welch, c.ci_low, c.ci_high))


def test_arms_of_different_lengths_cannot_be_paired_by_position():
    with pytest.raises(ValueError, match="equal lengths"):
        compare(BASELINE, VARIANT, paired=True)


def test_seed_keyed_arms_without_a_common_seed_cannot_be_paired():
    with pytest.raises(ValueError, match="none in common"):
        compare({0: 3.28, 1: 3.27}, {2: 3.28, 3: 3.27})


def test_a_seed_keyed_arm_cannot_be_paired_with_a_sequence():
    with pytest.raises(ValueError, match="both arms keyed by seed"):
        compare({0: 3.28, 1: 3.27}, [3.28, 3.27], paired=True)


def test_an_empty_arm_is_an_error():
    with pytest.raises(ValueError, match="variant must be a non-empty"):
        compare(BASELINE, [])


def test_a_diverged_run_with_a_nan_loss_is_an_error():
    with pytest.raises(ValueError, match="non-finite"):
        compare(BASELINE, [3.27, float("nan")])


def test_holm_on_the_wikipedia_example():
    # en.wikipedia.org/wiki/Holm–Bonferroni_method, example: p = 0.01, 0.04, 0.03, 0.005.
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    # 0.02, 0.03, 0.06, 0.06; back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_in_the_raw_pvalues_and_capped_at_one():
    # statsmodels' multipletests(method="holm") definition, by hand: sorted 0.01, 0.6, 0.7
    # times 3, 2, 1 = 0.03, 1.2, 0.7; running max 0.03, 1.2, 1.2; capped at 1
    assert holm([0.6, 0.01, 0.7]) == pytest.approx([1.0, 0.03, 1.0])


def test_holm_of_no_pvalues_is_empty():
    assert holm([]) == []


@pytest.mark.parametrize("bad", [[0.5, 1.2], [-0.1], [float("nan")]])
def test_holm_rejects_values_that_are_not_pvalues(bad):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        holm(bad)


def test_power_of_the_one_sample_t_test_agrees_with_monte_carlo():
    # d = 0.5, n = 34, two-sided alpha 0.05 is the textbook "n for 80% power"; checked
    # against 200,000 simulated studies (Monte-Carlo standard error ~0.0009)
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 1.0, size=(200_000, 34))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(34))
    simulated = np.mean(np.abs(t) > stats.t.ppf(0.975, 33))
    exact = power(0.5, 1.0, 34)
    assert exact == pytest.approx(0.8078, abs=1e-4)
    assert exact == pytest.approx(simulated, abs=0.004)


def test_power_of_the_two_sample_t_test_matches_r_power_t_test():
    # R's ?power.t.test example, power.t.test(n = 20, delta = 1): power = 0.8689528. R counts
    # only the upper rejection tail (strict = FALSE); the lower one adds 2.3e-7 here.
    assert power(1.0, 1.0, 20, paired=False) == pytest.approx(0.8689528, abs=1e-6)


def test_power_at_zero_effect_is_alpha_and_symmetric_in_sign():
    assert power(0.0, 0.0014, 10, alpha=0.05) == pytest.approx(0.05, abs=1e-12)
    assert power(-0.001, 0.0014, 10) == pytest.approx(power(0.001, 0.0014, 10), abs=1e-12)


@pytest.mark.parametrize(
    "effect, paired, published",
    [
        (0.5, True, 34),  # R pwr.t.test(d = 0.5, power = 0.8, type = "one.sample"): n = 33.37
        (0.5, False, 64),  # R power.t.test(delta = 0.5, power = 0.8): n = 63.77 per group
    ],
)
def test_seeds_needed_matches_published_sample_sizes(effect, paired, published):
    assert seeds_needed(effect, 1.0, paired=paired) == published


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("effect", [0.0005, 0.001, 0.002, 0.004])
def test_seeds_needed_is_the_first_n_that_reaches_the_power(effect, paired):
    n = seeds_needed(effect, 0.0014, power=0.8, paired=paired)
    assert power(effect, 0.0014, n, paired=paired) >= 0.8
    if n > 2:
        assert power(effect, 0.0014, n - 1, paired=paired) < 0.8


def test_seeds_needed_falls_as_the_effect_grows():
    needed = [seeds_needed(e, 0.0014) for e in (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005)]
    assert needed == sorted(needed, reverse=True)
    assert needed[0] > needed[-1]


@pytest.mark.parametrize("paired", [True, False])
def test_detectable_effect_is_where_the_power_reaches_the_target(paired):
    effect = detectable_effect(0.0014, 10, power=0.8, paired=paired)
    assert power(effect, 0.0014, 10, paired=paired) == pytest.approx(0.8, abs=1e-9)


def test_more_seeds_detect_smaller_effects():
    effects = [detectable_effect(0.0014, n) for n in (3, 5, 10, 20)]
    assert effects == sorted(effects, reverse=True)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: power(0.001, 0.0014, 1), "n >= 2"),
        (lambda: power(0.001, 0.0, 10), "std must be positive"),
        (lambda: detectable_effect(0.0014, 10, power=0.04), "power must be in"),
        (lambda: seeds_needed(0.0, 0.0014), "zero effect"),
    ],
)
def test_power_questions_without_an_answer_are_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_record_test_is_the_speedrun_rule():
    losses = [3.2790, 3.2781, 3.2802, 3.2776, 3.2795]
    r = record_test(losses)
    expected = stats.ttest_1samp(losses, 3.28, alternative="less").pvalue
    assert r.pvalue == pytest.approx(expected, **TIGHT)
    assert r.passed == (expected < 0.01)
    assert RECORD_P_THRESHOLD == 0.01


def test_record_test_passes_losses_clearly_below_the_target():
    losses = [3.2768, 3.2781, 3.2775, 3.2790, 3.2772, 3.2779, 3.2786, 3.2770, 3.2783, 3.2777]
    r = record_test(losses)
    assert r.n == 10 and r.mean < 3.28
    assert r.passed and r.pvalue < 1e-5


def test_record_test_fails_losses_around_the_target():
    losses = [3.2795, 3.2812, 3.2788, 3.2803, 3.2799, 3.2806, 3.2791, 3.2808, 3.2797, 3.2801]
    assert not record_test(losses).passed


def test_record_test_of_a_single_run_does_not_pass():
    r = record_test([3.270])
    assert math.isnan(r.pvalue) and not r.passed


def test_record_test_of_no_runs_is_an_error():
    with pytest.raises(ValueError, match="non-empty"):
        record_test([])
