"""Bad input that used to get a traceback or be wrongly accepted (issue 22, items 9 and 10): each
command refuses it with one `error:` line on stderr naming the file, flag, key or line and what
was expected, exits 2, in bounded time, and leaves nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.targets import check_overrides
from search_spaces import SpaceError, load_ablation, load_space
from search_spaces.names import MAX_NAME_CHARS, name_problem
from trainer.config import load_config
from trainer.errors import InputError
from trainer.text import QUOTED_CHARS
from trainer.yaml_safe import MAX_CHARS, MAX_DEPTH, MAX_NODES, YamlDataError, load

FIXTURES = Path(__file__).parent / "fixtures_script"
SPACE = """\
base: {config: tiny}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 2, steps: 2}
"""
ABLATION = """\
base: {config: tiny}
baseline: {optim.muon_lr: 0.04}
variants:
  lr_high: {optim.muon_lr: 0.08}
{more}
seeds: 2
budget: {steps: 2}
"""
QUICK_S = 5.0  # what "bounded time" means here, with room for a loaded 2-core machine


def speedrun(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(result) -> str:
    """The one `error:` line of a command that refused its input with exit code 2."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def bomb(levels: int, width: int = 9) -> str:
    """A flow list whose last item expands, through aliases, to width**levels strings: a billion
    laughs at 9 levels, in a few hundred bytes."""
    items = [f"&a0 [{', '.join(['lol'] * width)}]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a command would write lands here, where it is checked


# --- 9: tracebacks ---------------------------------------------------------------------------


def test_a_sweep_name_of_300_characters_is_refused_before_anything_runs(tmp_path):
    line = refused(speedrun("sweep", "smoke", "--name", "a" * 300))
    assert line.startswith("error: sweep name: got 'aaa") and f"expected 1 to {MAX_NAME_CHARS} letters" in line
    assert len(line) < 300 and "…" in line
    assert list(tmp_path.iterdir()) == []  # no store, no sweep folder


NON_UTF8_CONFIG = b"model:\n  num_layers: 4\xff\n"  # byte 22


@pytest.mark.parametrize(
    ("command", "content", "expected"),
    [
        (["record", "check", "{f}"], b"3.27\n3.27\xff\n", "error: {f}: not UTF-8 text at byte 9; expected final val losses"),
        (["train", "--config", "{f}"], NON_UTF8_CONFIG, "error: {f}: not UTF-8 text at byte 22; expected a trainer config YAML"),
        (["ablate", "tiny_switches", "--leave-one-out", "{f}"], NON_UTF8_CONFIG,
         "error: {f}: not UTF-8 text at byte 22; expected a trainer config YAML"),
        (["sweep", "{f}"], NON_UTF8_CONFIG, "error: {f}:1: (file): not UTF-8 text at byte 22; expected a YAML file"),
        (["script", "knobs", "{f}"], b"x = 1\ny = '\xe9'\n", "error: {f}: not UTF-8 text at byte 11; expected a Python script"),
    ],
)
def test_a_file_that_is_not_utf8_is_named_with_the_offset_of_its_first_bad_byte(tmp_path, command, content, expected):
    path = write(tmp_path / "input.txt", content)
    line = refused(speedrun(*(a.format(f=path) for a in command)))
    assert line.startswith(expected.format(f=path)), line


def test_script_patch_refuses_an_output_that_cannot_hold_what_it_writes(tmp_path):
    (tmp_path / "out.py").mkdir()
    (tmp_path / "plain").write_text("")
    knob = ["--set", "Hyperparameters.num_iterations=5"]
    line = refused(speedrun("script", "patch", str(FIXTURES / "knobs_2025.py"), *knob, "-o", str(tmp_path / "out.py")))
    assert line == (f"error: -o {tmp_path / 'out.py'}: is a folder; expected a .py file for the patched script, "
                    "or a folder (no .py suffix) for it and the modules it imports")
    line = refused(speedrun("script", "patch", str(FIXTURES / "knobs_2025.py"), *knob, "-o", str(tmp_path / "plain")))
    assert line.startswith(f"error: -o {tmp_path / 'plain'}: is a file; expected a .py file")
    # an existing folder without the suffix is what -o DIR means: it gets the copy
    result = speedrun("script", "patch", str(FIXTURES / "knobs_2025.py"), *knob, "-o", str(tmp_path))
    assert result.exit_code == 0 and "num_iterations: int = 5  #" in (tmp_path / "knobs_2025.py").read_text()


def test_data_synthetic_bounds_the_token_count_before_generating_anything(tmp_path):
    started = time.monotonic()
    line = refused(speedrun("data", "synthetic", "--tokens", "100000000000000", "--out", str(tmp_path / "syn")))
    assert time.monotonic() - started < QUICK_S
    assert line.startswith("error: --tokens 100000000000000: expected 1 to 100,000,000 tokens")
    assert not (tmp_path / "syn").exists()


def test_data_synthetic_refuses_an_output_folder_it_cannot_create(tmp_path):
    (tmp_path / "a_file").write_text("")
    line = refused(speedrun("data", "synthetic", "--tokens", "1000", "--out", str(tmp_path / "a_file" / "syn")))
    assert line.startswith(f"error: --out {tmp_path / 'a_file' / 'syn'}: cannot create ")
    assert line.endswith("Not a directory; expected a folder that can be created and written")
    line = refused(speedrun("data", "synthetic", "--tokens", "1000", "--out", str(tmp_path / "a_file")))
    assert line == f"error: --out {tmp_path / 'a_file'}: is a file; expected a folder for the two shards"


def _timed_refusal(load_it) -> str:
    started = time.monotonic()
    with pytest.raises((InputError, SpaceError)) as info:
        load_it()
    assert time.monotonic() - started < QUICK_S
    return str(info.value)


def test_an_alias_bomb_under_a_valid_space_key_is_refused_at_its_line_in_bounded_time(tmp_path):
    path = write(tmp_path / "space.yaml", SPACE.replace("{config: tiny}", "{config: tiny, set: {model.skip_attention_layers: "
                                                                           f"{bomb(9)}}}}}"))
    message = _timed_refusal(lambda: load_space(path))
    assert message == (f"{path}:1: (top level): expands to more than {MAX_NODES:,} values (aliases count each time they "
                       f"are used); expected at most {MAX_NODES:,}")


def test_an_alias_bomb_in_a_config_file_or_a_set_value_is_refused_with_a_short_message(tmp_path):
    path = write(tmp_path / "config.yaml", f"model:\n  skip_attention_layers: {bomb(7)}\n")  # 9^7: 4.8M values
    message = _timed_refusal(lambda: load_config(str(path)))
    assert message.startswith(f"{path}:2: expands to more than {MAX_NODES:,} values") and len(message) < 300
    line = refused(speedrun("train", "--config", str(path)))
    assert line.startswith(f"error: {path}:2: expands to more than")
    message = _timed_refusal(lambda: load_config("tiny", [f"model.skip_attention_layers={bomb(9)}"]))
    assert message.startswith("--set model.skip_attention_layers: value '[&a0 [lol") and "expands to more than" in message
    assert len(message) < 400


def test_lists_nested_500_deep_are_refused_not_a_recursion_error(tmp_path):
    space = write(tmp_path / "space.yaml", SPACE + f"description: {nested(500)}\n")
    assert f":5: (top level): nested more than {MAX_DEPTH} levels deep" in _timed_refusal(lambda: load_space(space))
    config = write(tmp_path / "config.yaml", f"model:\n  skip_attention_layers: {nested(500)}\n")
    assert f"{config}:2: nested more than {MAX_DEPTH} levels deep" in _timed_refusal(lambda: load_config(str(config)))
    message = _timed_refusal(lambda: load_config("tiny", [f"optim.adam_betas={nested(100_000)}"]))
    assert message.startswith("--set optim.adam_betas: value '[[[[") and f"nested more than {MAX_DEPTH}" in message


def test_the_bounded_loader_still_reads_plain_data_with_aliases_and_merge_keys():
    assert load("a: &x {b: 1, c: [1, 2]}\nd: *x\ne: {<<: *x, b: 3}\n") == {
        "a": {"b": 1, "c": [1, 2]}, "d": {"b": 1, "c": [1, 2]}, "e": {"b": 3, "c": [1, 2]}}
    with pytest.raises(YamlDataError, match=r"alias \*x is inside the node it names"):
        load("a: &x [1, *x]\n")
    with pytest.raises(YamlDataError, match=rf"{MAX_CHARS + 1:,} characters; expected a YAML document of at most"):
        load("#" * (MAX_CHARS + 1))


def test_a_long_value_is_cut_in_the_error_that_quotes_it(tmp_path):
    long = "x" * 100_000
    config = write(tmp_path / "config.yaml", f"optim:\n  muon_lr: {long}\n")
    message = _timed_refusal(lambda: load_config(str(config)))
    assert f"(got '{'x' * (QUOTED_CHARS - 2)}…)" in message and len(message) < 300
    space = write(tmp_path / "space.yaml", SPACE.replace("[0.01, 0.1]", f"[0.01, {long}]"))
    message = _timed_refusal(lambda: load_space(space))
    assert message.endswith("params.optim.muon_lr.float[1]: got 'xxxxxxxxxxx" + "x" * (QUOTED_CHARS - 13) + "…; expected a number")
    space = write(tmp_path / "space.yaml", SPACE.replace("{float: [0.01, 0.1], log: true}", long))
    message = _timed_refusal(lambda: load_space(space, check_overrides=load_config))
    assert "params.optim.muon_lr: the trainer rejects 'optim.muon_lr=xxx" in message and len(message) < 500


# --- 10: wrongly accepted -----------------------------------------------------------------------


def test_a_sweep_name_with_a_trailing_newline_is_refused(tmp_path):
    line = refused(speedrun("sweep", "smoke", "--name", "x\n"))
    assert line.startswith("error: sweep name: got 'x\\n'; expected 1 to 100 letters")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["x\n", "a" * (MAX_NAME_CHARS + 1), "-x", "", "a b", None])
def test_one_name_rule_for_sweeps_spaces_and_arms(tmp_path, name):
    assert name_problem(name) is not None
    assert name_problem("a" * MAX_NAME_CHARS) is None and name_problem("lr_2.b-3") is None
    if isinstance(name, str) and name:  # a YAML key or value can hold it
        quoted = '"' + name.replace("\n", "\\n") + '"'
        space = write(tmp_path / "space.yaml", SPACE + f"name: {quoted}\n")
        assert "name: got " in _timed_refusal(lambda: load_space(space))
        ablation = write(tmp_path / "ablation.yaml", ABLATION.replace("{more}", f"  {quoted}: {{optim.muon_lr: 0.02}}"))
        assert "arm name " in _timed_refusal(lambda: load_ablation(ablation))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("optim.muon_lr=1e400", "invalid config: --set optim.muon_lr=1e400: optim.muon_lr: Input should be a finite number"),
        ("optim.adam_lr=.inf", "invalid config: --set optim.adam_lr=.inf: optim.adam_lr: Input should be a finite number"),
        ("model.num_layers=true",
         "invalid config: --set model.num_layers=true: model.num_layers: Input should be a number, not true or false"),
        ("optim.muon_lr=false", "invalid config: --set optim.muon_lr=false: optim.muon_lr: Input should be a number, not"),
        # a check across the section's keys names the --set that broke it, not the preset's line
        ("model.num_layers=7", "invalid config: --set model.num_layers=7: model: Value error, num_layers must be even"),
    ],
)
def test_a_set_that_is_not_a_usable_number_is_refused_and_named(item, expected):
    with pytest.raises(InputError) as info:
        load_config("tiny", [item])
    assert str(info.value).startswith(expected) and "tiny.yaml" not in str(info.value)
    line = refused(speedrun("train", "--config", "tiny", "--set", item))
    assert line.startswith("error: " + expected)


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        ("3.2781\n-3.2790\n", [], "{f}:2: loss '-3.2790' is not a cross-entropy; expected a finite number ≥ 0"),
        ("3.2781\n3_27\n", [], "{f}:2: expected one loss per line (a decimal number), got '3_27'"),
        ("3.2781\n1e400\n", [], "{f}:2: loss '1e400' is not a cross-entropy"),
        ("3.27\n3.27\n3.27\n", [], "{f}: all 3 losses are 3.27; the record rule's t-test needs losses that vary"),
        ("3.2781\n3.2790\n", ["--target", "nan"], "--target nan: expected a finite val loss, e.g. 3.28"),
        ("3.2781\n3.2790\n", ["--target", "inf"], "--target inf: expected a finite val loss, e.g. 3.28"),
    ],
)
def test_record_check_refuses_what_is_not_a_set_of_losses_it_can_test(tmp_path, text, args, expected):
    path = write(tmp_path / "losses.txt", text)
    line = refused(speedrun("record", "check", str(path), *args))
    assert line.startswith("error: " + expected.format(f=path)), line


@pytest.mark.parametrize("nproc", ["0", "-4"])
def test_promote_refuses_a_rank_count_below_one_before_any_work(tmp_path, nproc):
    line = refused(speedrun("promote", "some_sweep", "--nproc", nproc))
    assert line == f"error: --nproc {nproc}: expected 1 or more ranks for the record folder's run.sh (1 runs plain python)"
    assert list(tmp_path.iterdir()) == []  # no MLflow store opened


def test_a_data_glob_that_matches_nothing_here_is_refused_naming_its_key(tmp_path):
    shard = write(tmp_path / "shard_000001.bin", b"")
    space = write(tmp_path / "space.yaml", SPACE.replace("{config: tiny}", "\n  config: tiny\n  set:\n"
                                                         "    data.train_files: nowhere/train_*.bin\n"
                                                         f"    data.val_files: {shard}\n"))
    message = _timed_refusal(lambda: load_space(space, check_overrides=check_overrides))
    assert message == (f"{space}:4: base.set.data.train_files: 'nowhere/train_*.bin' matches no file (relative to "
                       f"{tmp_path}), so every trial would fail; expected a glob of existing shards, or one with "
                       "$DATA_DIR that each node expands (docs/cluster.md)")
    # a variable is each node's to expand (the driver may have no data), and fixtures are shipped
    space.write_text(space.read_text().replace("nowhere/train_*.bin", "$DATA_DIR/train_*.bin"))
    load_space(space, check_overrides=check_overrides)
    space.write_text(space.read_text().replace("$DATA_DIR/train_*.bin", "'@fixtures/fixture_train_*.bin'"))
    load_space(space, check_overrides=check_overrides)


def test_an_ablation_variant_that_changes_nothing_or_repeats_another_is_refused(tmp_path):
    more = ("  same_as_baseline: {optim.muon_lr: 0.04}\n  empty: {}\n  lr_high_again: {optim.muon_lr: 0.080}")
    path = write(tmp_path / "ablation.yaml", ABLATION.replace("{more}", more))
    errors = _timed_refusal(lambda: load_ablation(path)).splitlines()
    nothing = "changes nothing: it runs the baseline's config; expected at least one key set to a value other than the baseline's"
    assert errors == [
        f"{path}:5: variants.same_as_baseline: arm 'same_as_baseline' {nothing}",
        f"{path}:6: variants.empty: arm 'empty' {nothing}",
        f"{path}:7: variants.lr_high_again: arm 'lr_high_again' runs the same config as arm 'lr_high'; expected each variant to differ",
    ]
    # with the trainer's hook, a key set to the value the config already has is no change either
    path = write(tmp_path / "ablation.yaml", ABLATION.replace("{more}", "  x0_mix_on: {model.x0_mix: true}"))
    load_ablation(path)
    assert "arm 'x0_mix_on' changes nothing" in _timed_refusal(lambda: load_ablation(path, check_overrides=load_config))


def test_script_patch_never_writes_over_the_original(tmp_path):
    script = tmp_path / "train_gpt.py"
    script.write_bytes((FIXTURES / "knobs_2025.py").read_bytes())
    folder = tmp_path / "record"
    folder.mkdir()
    for path in (FIXTURES / "tiny_record").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "train_gpt.py").symlink_to(script)  # as a trial's code folder links the originals
    before = {p: p.read_bytes() for p in [script, *folder.iterdir()]}
    knob = ["--set", "Hyperparameters.num_iterations=5"]
    for source, out, kind in [(script, script, "file"), (script, tmp_path / "." / "train_gpt.py", "file"),
                              (script, linked, "folder"), (folder / "train_gpt.py", folder, "folder")]:
        line = refused(speedrun("script", "patch", str(source), *knob, "-o", str(out)))
        assert line.startswith(f"error: -o {out}: would overwrite the original ")
        assert line.endswith(f"; expected another {kind} (the original is never edited)")
    assert {p: p.read_bytes() for p in before} == before
