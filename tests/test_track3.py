"""The optimization track's rules as commands (issue 23): `record check --track 3` (validity, at a
step or the earliest passing step of a table of val loss by step and seed), `record compare
--track 3 --steps` (the pairwise rule, checked on the README's three worked examples), track-1
`record compare` (Welch or paired t-tests on loss and train time), `--json`, and bad input.

The rules and numbers: modded-nanogpt records/track_3_optimization/README.md, sections "Rules"
and "Pairwise statistical significance"."""

from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis import record_plan, track3
from analysis.losses_file import Runs, StepTable, load_losses, read_losses
from analysis.track3 import earliest_passing_step, pairwise, validity
from orchestrator.cli import app


def speedrun(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(result) -> str:
    """The one `error:` line of a command that refused its input with exit code 2."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def losses_around(mean: float, n: int, spread: float = 0.0005) -> list[float]:
    """n losses whose mean is `mean` (to float precision): pairs mean ± spread, plus the mean itself when n is odd."""
    values = [mean + spread * (1 if i % 2 else -1) for i in range(n - n % 2)] + [mean] * (n % 2)
    return [round(v, 6) for v in values]


def write_losses(path: Path, losses: list[float]) -> Path:
    path.write_text("".join(f"{x}\n" for x in losses))
    return path


def write_table(path: Path, rows: dict[int, list[float]], sep: str = ",") -> Path:
    n = len(next(iter(rows.values())))
    lines = [sep.join(["step", *(f"seed_{i}" for i in range(n))])]
    lines += [sep.join([str(step), *map(str, losses)]) for step, losses in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def printed_lhs(output: str) -> float:
    return float(re.search(r"lhs = .* = (\S+)", output).group(1))


# --- the rules as functions ------------------------------------------------------------------


def test_one_module_owns_the_tracks_numbers():
    assert (track3.TARGET, track3.SIGMA, track3.MARGIN, track3.LOSS_PER_100_STEPS) == (3.28, 0.0013, 0.004, 0.0045)
    assert record_plan.TRACK3_MARGIN is track3.MARGIN
    assert not re.search(r"^\w+\s*=\s*0\.00(4|13)\b", inspect.getsource(record_plan), re.M)  # no second copy


def test_validity_is_the_readmes_condition():
    v = validity([3.2775, 3.2783, 3.2779, 3.2779])
    assert (v.n, v.mean) == (4, pytest.approx(3.2779))
    assert v.lhs == pytest.approx((3.28 - 3.2779) * 2)
    assert v.passes
    assert validity({"a": 3.2761}).passes is False  # a {seed: loss} mapping works the same


def test_pairwise_is_the_readmes_condition():
    r = pairwise([3.2790] * 20, [3.2788] * 20, new_steps=3325, old_steps=3375)
    assert (r.loss_diff, r.step_diff) == (pytest.approx(-0.0002), 50)
    assert r.lhs == pytest.approx((-0.0002 + 0.5 * 0.0045) / math.sqrt(0.1))
    assert r.passes


def test_earliest_passing_step_rows_and_none_when_no_step_passes():
    table = {3225: [3.2779] * 4, 3200: [3.2781] * 4, 3250: [3.2770] * 4}
    result = earliest_passing_step(table)
    assert result.step == 3225
    assert [(r.step, r.n, r.passes) for r in result.rows] == [(3200, 4, False), (3225, 4, True), (3250, 4, True)]
    assert result.rows[0].lhs == pytest.approx(0.0038) and result.row.mean == pytest.approx(3.2779)
    assert earliest_passing_step({3200: [3.2790, 3.2785]}).step is None


# --- record check --track 3 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("losses", "passes"),
    [
        # "for a single non-cherry-picked run, any val loss below 3.276 suffices"
        ([3.2759], True),
        ([3.2761], False),
        ([3.276], True),  # exactly on the margin: the condition is `>= 0.004`
        # "for n=4 runs, any average below 3.278 suffices"
        (losses_around(3.2779, 4), True),
        (losses_around(3.2781, 4), False),
    ],
)
def test_check_track3_applies_the_readmes_validity_examples(tmp_path, losses, passes):
    path = write_losses(tmp_path / "losses.txt", losses)
    result = speedrun("record", "check", path, "--track", "3")
    assert result.exit_code == (0 if passes else 1), result.output
    v = validity(losses)
    assert f"n={len(losses)}  mean={np.mean(losses):.5f}  (3.28 − mean)·√n={v.lhs:#.4g}" in result.output
    assert result.output.splitlines()[-1].startswith(("PASS: " if passes else "FAIL: ") + f"{v.lhs:#.4g}")
    assert "0.004" in result.output.splitlines()[-1]


def test_check_track3_json(tmp_path):
    path = write_losses(tmp_path / "losses.txt", losses_around(3.2779, 4))
    result = speedrun("record", "check", path, "--track", "3", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out == {"track": 3, "file": str(path), "step": None, "n": 4, "mean": pytest.approx(3.2779),
                   "lhs": pytest.approx(0.0042), "margin": 0.004, "target": 3.28, "passed": True}


TABLE = {
    3175: [3.2790, 3.2784, 3.2786, 3.2780],  # mean 3.2785: fails
    3200: losses_around(3.2781, 4),  # 0.0038: fails
    3225: losses_around(3.2779, 4),  # 0.0042: passes, the claim
    3250: losses_around(3.2771, 4),
}


@pytest.mark.parametrize("sep", [",", "\t", "  "])
def test_check_track3_on_a_table_claims_the_earliest_passing_step(tmp_path, sep):
    path = write_table(tmp_path / "val.csv", TABLE, sep)
    result = speedrun("record", "check", path, "--track", "3")
    assert result.exit_code == 0, result.output
    for step, losses in TABLE.items():
        v = validity(losses)
        verdict = "PASS" if v.passes else "FAIL"
        assert re.search(rf"\| {step} \| 4 \| {np.mean(losses):.5f} \|\s+{v.lhs:#.4g} \| {verdict}", result.output)
    assert result.output.splitlines()[-1].startswith("PASS: earliest passing step 3225: n=4  mean=3.27790")


def test_check_track3_table_json_lists_every_step(tmp_path):
    path = write_table(tmp_path / "val.csv", TABLE)
    out = json.loads(speedrun("record", "check", path, "--track", "3", "--json").stdout)
    assert (out["step"], out["n"], out["passed"]) == (3225, 4, True)
    assert out["lhs"] == pytest.approx(0.0042)
    assert [(s["step"], s["passed"]) for s in out["steps"]] == [(3175, False), (3200, False), (3225, True), (3250, True)]


def test_check_track3_table_where_no_step_passes_exits_1(tmp_path):
    path = write_table(tmp_path / "val.csv", {3175: TABLE[3175], 3200: TABLE[3200]})
    result = speedrun("record", "check", path, "--track", "3")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("FAIL: no step passes; the closest, step 3200, has 0.003800 < 0.004")
    out = json.loads(speedrun("record", "check", path, "--track", "3", "--json").stdout)
    assert (out["step"], out["n"], out["lhs"], out["passed"]) == (None, None, None, False)


def test_check_track3_at_a_step(tmp_path):
    path = write_table(tmp_path / "val.csv", TABLE)
    result = speedrun("record", "check", path, "--track", "3", "--step", "3200")
    assert result.exit_code == 1 and "step=3200  n=4  mean=3.27810" in result.output
    assert speedrun("record", "check", path, "--track", "3", "--step", "3250").exit_code == 0


def test_check_track1_on_a_table_uses_the_last_step_or_step(tmp_path):
    path = write_table(tmp_path / "val.csv", TABLE)
    for step, args in ((3250, []), (3200, ["--step", "3200"])):
        result = speedrun("record", "check", path, *args)
        p = stats.ttest_1samp(TABLE[step], 3.28, alternative="less").pvalue
        assert f"step={step}  n=4" in result.output and f"p={p:.4g}" in result.output
        assert result.exit_code == (0 if p < 0.01 else 1)
    out = json.loads(speedrun("record", "check", path, "--json").stdout)
    assert (out["track"], out["step"], out["threshold"]) == (1, 3250, 0.01)
    assert out["p"] == pytest.approx(stats.ttest_1samp(TABLE[3250], 3.28, alternative="less").pvalue)


def test_plain_files_read_as_before_and_tables_give_their_last_step(tmp_path):
    assert read_losses(write_losses(tmp_path / "a.txt", [3.2781, 3.279])) == [3.2781, 3.279]
    loaded = load_losses(write_table(tmp_path / "val.csv", TABLE))
    assert isinstance(loaded, StepTable) and loaded.steps == (3175, 3200, 3225, 3250)
    assert read_losses(tmp_path / "val.csv") == TABLE[3250]


def test_a_runs_table_holds_seeds_and_times_in_ms(tmp_path):
    path = tmp_path / "runs.tsv"
    path.write_text("# attempt 2\nseed\tval_loss\ttrain_time_s\n7\t3.2781\t179.5  # node 3\n8\t3.2779\t180.25\n")
    runs = load_losses(path)
    assert runs == Runs(path, (3.2781, 3.2779), ("7", "8"), (179500.0, 180250.0))


# --- record compare --track 3: the README's worked examples -----------------------------------

# (new mean, n_new, new steps), (old mean, n_old, old steps), the README's left-hand side, its digits
EXAMPLES = {
    # "#12 vs #6 ... final_loss_diff = -0.0002, exp_stepbased_loss_diff = 50/100*0.0045 ... n1 = n2 = 20 ... 0.00648"
    "12 vs 6": ((3.2790, 20, 3325), (3.2788, 20, 3375), "0.00648", 3, 0),
    # "#13 ... Against result #11, we have a difference of 15 steps, with final loss being the same ...
    # n=16 and n=10 ... the LHS is 0.00167"
    "13 vs 11": ((3.2785, 10, 3210), (3.2785, 16, 3225), "0.00167", 3, 1),
    # "((3.2778 - 3.2785) + (40/100 * 0.0045)) / (1/10 + 1/16)**0.5 = 0.0027"
    "13 vs 8": ((3.2785, 10, 3210), (3.2778, 16, 3250), "0.0027", 2, 1),
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_compare_track3_reproduces_the_readmes_pairwise_examples(tmp_path, name):
    (new_mean, n_new, new_steps), (old_mean, n_old, old_steps), lhs, digits, code = EXAMPLES[name]
    new = write_losses(tmp_path / "new.txt", losses_around(new_mean, n_new))
    old = write_losses(tmp_path / "old.txt", losses_around(old_mean, n_old))
    result = speedrun("record", "compare", new, old, "--track", "3", "--steps", new_steps, old_steps)
    assert result.exit_code == code, result.output
    assert f"{printed_lhs(result.output):.{digits}g}" == lhs
    assert re.search(r"lhs = .* = \d\.\d{3}e-0\d|lhs = .* = 0\.00\d{4}$", result.output, re.M)  # 4 significant digits
    assert f"new: {new}  n={n_new}  mean={new_mean:.5f}  at {new_steps} steps" in result.output
    assert f"old: {old}  n={n_old}  mean={old_mean:.5f}  at {old_steps} steps" in result.output
    assert f"step_diff = old − new = {old_steps - new_steps} steps" in result.output
    out = json.loads(speedrun("record", "compare", new, old, "--track", "3", "--steps", new_steps, old_steps,
                              "--json").stdout)
    assert f"{out['lhs']:.{digits}g}" == lhs and out["passed"] is (code == 0)
    assert (out["n_new"], out["n_old"], out["steps_new"], out["steps_old"]) == (n_new, n_old, new_steps, old_steps)
    assert out["loss_diff"] == pytest.approx(old_mean - new_mean, abs=1e-12)
    assert out["step_diff"] == old_steps - new_steps and out["loss_per_100_steps"] == 0.0045


def test_compare_track3_reads_tables_at_the_given_steps(tmp_path):
    new = write_table(tmp_path / "new.csv", TABLE)
    old = write_losses(tmp_path / "old.txt", losses_around(3.2788, 20))
    result = speedrun("record", "compare", new, old, "--track", "3", "--steps", "3225", "3375", "--json")
    out = json.loads(result.stdout)
    expected = pairwise(TABLE[3225], losses_around(3.2788, 20), 3225, 3375)
    assert out["lhs"] == pytest.approx(expected.lhs) and out["mean_new"] == pytest.approx(3.2779)
    assert result.exit_code == (0 if expected.passes else 1)


# --- record compare, track 1 ------------------------------------------------------------------

NEW = [3.2779, 3.2781, 3.2776, 3.2784, 3.2772, 3.2778]
OLD = [3.2790, 3.2786, 3.2795, 3.2781, 3.2793]


def test_compare_track1_welch_on_two_files_of_final_losses(tmp_path):
    new, old = write_losses(tmp_path / "new.txt", NEW), write_losses(tmp_path / "old.txt", OLD)
    result = speedrun("record", "compare", new, old)
    p = stats.ttest_ind(NEW, OLD, equal_var=False, alternative="less").pvalue
    assert result.exit_code == 0, result.output
    assert "Welch" in result.output and f"{p:.4g}" in result.output
    assert "neither file holds train times" in result.output and "PASS: NEW is significantly lower in val loss" in result.output
    out = json.loads(speedrun("record", "compare", new, old, "--json").stdout)
    ci = stats.ttest_ind(NEW, OLD, equal_var=False).confidence_interval(0.95)
    assert (out["test"], out["decided_by"], out["train_time_ms"], out["n_pairs"]) == ("welch", "val_loss", None, None)
    assert out["val_loss"]["p"] == pytest.approx(p)
    assert out["val_loss"]["difference"] == pytest.approx(np.mean(NEW) - np.mean(OLD))
    assert (out["val_loss"]["ci_low"], out["val_loss"]["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # the other way round NEW is not lower
    assert speedrun("record", "compare", old, new).exit_code == 1


def test_compare_track1_pairs_tables_naming_the_same_seeds(tmp_path):
    new = write_table(tmp_path / "new.csv", {3000: [3.2790, 3.2770, 3.2785, 3.2775], 3100: NEW[:4]})
    old = write_table(tmp_path / "old.csv", {3100: [3.2781, 3.2783, 3.2779, 3.2787]})
    out = json.loads(speedrun("record", "compare", new, old, "--json").stdout)
    rel = stats.ttest_rel(NEW[:4], [3.2781, 3.2783, 3.2779, 3.2787], alternative="less")
    assert (out["test"], out["n_pairs"]) == ("paired", 4)
    assert out["val_loss"]["p"] == pytest.approx(rel.pvalue)
    assert out["passed"] is bool(rel.pvalue < 0.01)


def test_compare_track1_decides_on_train_time_where_both_files_hold_it(tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("seed,val_loss,train_time_ms\n0,3.2781,179100\n1,3.2779,179400\n2,3.2775,178900\n3,3.2784,179050\n")
    old = tmp_path / "old.tsv"
    old.write_text("seed\tval_loss\ttrain_time_s\n0\t3.2783\t181.2\n1\t3.2780\t181.0\n2\t3.2779\t180.7\n3\t3.2786\t181.5\n")
    result = speedrun("record", "compare", new, old)
    p_time = stats.ttest_rel([179100, 179400, 178900, 179050], [181200, 181000, 180700, 181500], alternative="less").pvalue
    assert result.exit_code == 0, result.output
    assert "paired t-test over the 4 seeds" in result.output
    assert f"PASS: NEW is significantly faster than OLD: one-sided p={p_time:.4g} < 0.01" in result.output
    out = json.loads(speedrun("record", "compare", new, old, "--json").stdout)
    assert out["decided_by"] == "train_time" and out["train_time_ms"]["p"] == pytest.approx(p_time)
    assert out["train_time_ms"]["mean_old"] == pytest.approx(181100.0)


def test_help_documents_json_keys_and_an_example():
    for command in ("check", "compare"):
        text = speedrun("record", command, "--help").output
        assert "Example:" in text and "--json" in text and "passed" in text


# --- bad input: one error line, exit 2 --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("step,seed_0,seed_1\n3200,3.2781,\n3225,3.2779,\n", "{f}:1: seed 'seed_1' has no values"),
        ("step,seed_0,seed_1\n3200,3.2781,3.2779\n3225,3.2779\n", "{f}:3: no val loss for seed 'seed_1' at step 3225"),
        ("step seed_0 seed_1\n3200 3.2781 3.2779\n3225 3.2779\n", "{f}:3: no val loss for seed 'seed_1' at step 3225"),
        ("step,seed_0\n3200,3.2781\n3225,3.2779\n3200,3.2780\n", "{f}:4: step 3200 appears again (first on line 2)"),
        ("step,seed_0,seed_1\n3200,3.2781,nan\n", "{f}:2: seed 'seed_1': 'nan' is not finite"),
        ("step,seed_0,seed_1\n3200,3.2781,inf\n", "{f}:2: seed 'seed_1': 'inf' is not finite"),
        ("step,seed_0,seed_1\n3200,3.2781,-3.2779\n", "{f}:2: seed 'seed_1': val loss '-3.2779' is out of range"),
        ("step,seed_0,train_time_ms\n3200,3.2781,1000\n", "{f}:1: unknown column 'train_time_ms'"),
        ("val_loss,node\n3.2781,a\n", "{f}:1: unknown column 'node' in a table of runs"),
        ("step,seed_0\n3200.5,3.2781\n", "{f}:2: step '3200.5' is not a step"),
        ("step,seed_0,seed_1\n", "{f}: a header (line 1) but no rows"),
        ("", "{f}: no losses"),
    ],
)
def test_check_track3_refuses_a_bad_table(tmp_path, text, expected):
    path = tmp_path / "val.csv"
    path.write_text(text)
    line = refused(speedrun("record", "check", path, "--track", "3"))
    assert line.startswith("error: " + expected.format(f=path)), line


def test_a_step_the_table_lacks_is_refused_naming_it(tmp_path):
    path = write_table(tmp_path / "val.csv", TABLE)
    line = refused(speedrun("record", "check", path, "--track", "3", "--step", "3300"))
    assert line == f"error: --step 3300: {path} has no val step 3300; its steps: 3175, 3200, 3225, 3250 (4 steps)"
    plain = write_losses(tmp_path / "losses.txt", [3.2781, 3.2779])
    assert refused(speedrun("record", "check", plain, "--step", "3200")).startswith(
        f"error: --step 3200: {plain} holds final losses, not a table")


def test_compare_track3_refuses_steps_that_do_not_match(tmp_path):
    new = write_table(tmp_path / "new.csv", TABLE)
    old = write_losses(tmp_path / "old.txt", losses_around(3.2788, 20))
    line = refused(speedrun("record", "compare", new, old, "--track", "3", "--steps", "3300", "3375"))
    assert line.startswith(f"error: --steps 3300 3375: {new} has no val step 3300; its steps: 3175, 3200")
    line = refused(speedrun("record", "compare", old, new, "--track", "3", "--steps", "3375", "3300"))
    assert line.startswith(f"error: --steps 3375 3300: {new} has no val step 3300")
    assert "--steps N_NEW N_OLD is required with --track 3" in refused(speedrun("record", "compare", new, old, "--track", "3"))
    assert "expected step counts ≥ 1" in refused(
        speedrun("record", "compare", new, old, "--track", "3", "--steps", "0", "3375"))
    assert "step counts are for the pairwise rule (--track 3)" in refused(
        speedrun("record", "compare", new, old, "--steps", "3225", "3375"))


def test_compare_refuses_what_no_t_test_can_be_made_of(tmp_path):
    two = write_losses(tmp_path / "two.txt", [3.2781, 3.2779])
    one = write_losses(tmp_path / "one.txt", [3.2781])
    assert refused(speedrun("record", "compare", one, two)) == \
        f"error: {one}: 1 val loss value(s); the Welch t-test needs at least 2 runs per attempt"
    same = write_losses(tmp_path / "same.txt", [3.278, 3.278])
    assert "no spread" in refused(speedrun("record", "compare", same, same))
    a = write_table(tmp_path / "a.csv", {3000: [3.2781]})
    b = write_table(tmp_path / "b.csv", {3000: [3.2783]})
    assert "needs at least 2" in refused(speedrun("record", "compare", a, b))
    bad = tmp_path / "bad.txt"
    bad.write_text("3.2781\nnan\n")
    assert refused(speedrun("record", "compare", bad, two)).startswith(f"error: {bad}:2:")
    # one run is enough for the pairwise z-test, as for validity
    assert speedrun("record", "compare", one, two, "--track", "3", "--steps", "3000", "3100").exit_code in (0, 1)


def test_check_refuses_fewer_than_two_losses_only_for_the_t_test(tmp_path):
    one = write_losses(tmp_path / "one.txt", [3.2759])
    assert "the record rule's t-test needs at least 2 runs" in refused(speedrun("record", "check", one))
    assert speedrun("record", "check", one, "--track", "3").exit_code == 0


def test_an_unknown_track_is_refused(tmp_path):
    path = write_losses(tmp_path / "losses.txt", [3.2781, 3.2779])
    assert refused(speedrun("record", "check", path, "--track", "2")).startswith("error: --track 2: expected 1")
