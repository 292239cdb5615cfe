"""Patching a speedrun script: only the addressed literals' text changes (trainer/script/patch.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli_script import script_app
from trainer.errors import InputError
from trainer.script.knobs import list_knobs, read_script
from trainer.script.patch import parse_assignment, parse_assignments, patch

FIXTURES = Path(__file__).parent / "fixtures_script"
SCRIPT_2025 = FIXTURES / "knobs_2025.py"
SCRIPT_2024 = FIXTURES / "knobs_2024.py"


def spliced(source: str, texts: dict[str, str]) -> str:
    """The source with each addressed knob's span replaced by the given text, built independently of patch()."""
    spans = sorted((k.start, k.end, texts[k.address]) for k in list_knobs(source) if k.address in texts)
    assert len(spans) == len(texts)
    out, at = [], 0
    for start, end, text in spans:
        out += [source[at:start], text]
        at = end
    return "".join(out + [source[at:]])


# address -> (value as a --set gives it, the text it must become)
CHANGES_2025 = {
    "Hyperparameters.num_iterations": (1750, "1750"),  # its same-line comment stays
    "Hyperparameters.weight_decay": (0.1, "0.1"),  # `weight_decay: float = 0`
    "Hyperparameters.save_checkpoint": (True, "True"),
    "Hyperparameters.train_files": ("data/x_*.bin", '"data/x_*.bin"'),  # the original's double quotes
    "TRAINING_STAGES[0].batch_size": (262144, "262144"),  # `8 * 2048 * 8` becomes one number
    "TRAINING_STAGES[1].lr_mul": (1.6, "1.6"),
    "TRAINING_STAGES[2].lr_mul": (2, "2.0"),  # a float knob writes a float
    "TRAINING_STAGES[2].window_sizes": ([6, 13], "(6, 13)"),
    "NS_COEFFS[1]": (-4.5, "-4.5"),
    "adam_defaults.eps": (1e-9, "1e-09"),
    'muon_defaults["ns steps"]': (6, "6"),
    "Muon.momentum#2": (0.8, "0.8"),
    "get_lr.return{0.9}": (-0.8, "(-0.8)"),  # negative inside an expression: parenthesised
    "optimizer2(0)[1].lr": (0.5, "0.5"),
}


def test_patch_changes_exactly_the_addressed_spans():
    source = read_script(SCRIPT_2025)
    patched = patch(source, {a: v for a, (v, _) in CHANGES_2025.items()})
    assert patched.encode() == spliced(source, {a: t for a, (_, t) in CHANGES_2025.items()}).encode()
    ast.parse(patched)
    assert "num_iterations: int = 1750  # optimizer steps\n" in patched
    after = {k.address: k.value for k in list_knobs(patched)}
    assert after["TRAINING_STAGES[2].window_sizes"] == (6, 13)
    assert after["Hyperparameters.weight_decay"] == 0.1
    assert after["get_lr.return{-0.8}"] == -0.8  # a `{text}` address follows its text


def test_patch_keeps_every_other_byte_of_a_crlf_file_with_non_ascii_text():
    source = "\ufeff" + read_script(SCRIPT_2024).replace("\n", "\r\n")
    patched = patch(source, {"beta": 0.25, "label": "γ", "window_schedule[1][1]": 2048, "b": -4.8})
    expected = spliced(source, {"beta": "0.25", "label": '"γ"', "window_schedule[1][1]": "2048", "b": "-4.8"})
    assert patched.encode() == expected.encode()
    assert patched.count("\r\n") == source.count("\r\n")


def test_tuples_keep_their_brackets_and_may_change_length():
    source = "a = (1, 3)\nb = [0.5, 0.25]\nc = (2, 4)\n"
    patched = patch(source, {"a": [2], "b": [1.0, 0.5, 0.25], "c": (8, 16)})
    assert patched == "a = (2,)\nb = [1.0, 0.5, 0.25]\nc = (8, 16)\n"


@pytest.mark.parametrize(
    "address, value, message",
    [
        ("Hyperparameters.num_iterations", 1750.5, r"takes an int \(its literal is an int\); got float 1750.5"),
        ("Hyperparameters.num_iterations", True, "takes an int; got bool True"),
        ("Hyperparameters.cooldown_frac", "0.5", "takes a number; got string '0.5'"),
        ("Hyperparameters.cooldown_frac", float("nan"), "takes a finite number"),
        ("Hyperparameters.save_checkpoint", 1, "takes true or false; got int 1"),
        ("Hyperparameters.train_files", 3, "takes a string; got int 3"),
        ("TRAINING_STAGES[0].window_sizes", 4, r"takes a list of numbers, e.g. \[1, 3\]; got int 4"),
        ("TRAINING_STAGES[0].window_sizes", [1.5, 3], "takes an int"),
        ("adam_defaults.lr", None, "takes a number; got nothing"),
    ],
)
def test_a_value_of_the_wrong_type_fails_naming_the_knob(address, value, message):
    with pytest.raises(InputError, match=rf"^{re.escape(address)} \(line \d+: .*\) {message}"):
        patch(read_script(SCRIPT_2025), {address: value})


def test_an_unknown_address_lists_the_closest_ones():
    source = read_script(SCRIPT_2025)
    with pytest.raises(InputError) as typo:
        patch(source, {"Hyperparameters.num_iteration": 10})
    assert "no knob 'Hyperparameters.num_iteration'" in str(typo.value)
    assert "closest: Hyperparameters.num_iterations (line 20: 1695)" in str(typo.value)
    with pytest.raises(InputError) as short:
        patch(source, {"lr": 0.1})
    assert "adam_defaults.lr (line" in str(short.value) and "muon_defaults.lr (line" in str(short.value)


def test_an_ambiguous_address_lists_its_numbered_knobs():
    with pytest.raises(InputError, match=r"'Muon.momentum' is ambiguous.*Muon.momentum#1 \(line 74: 0.9\), "
                                         r"Muon.momentum#2 \(line 75: 0.85\)"):
        patch(read_script(SCRIPT_2025), {"Muon.momentum": 0.9})


def test_a_tuple_and_its_element_cannot_both_be_set():
    with pytest.raises(InputError, match="same literal's text"):
        patch(read_script(SCRIPT_2025),
              {"TRAINING_STAGES[0].window_sizes": [2, 4], "TRAINING_STAGES[0].window_sizes[0]": 2})


@pytest.mark.parametrize(
    "item, expected",
    [
        ("Hyperparameters.num_iterations=1750", ("Hyperparameters.num_iterations", 1750)),
        ("adam_defaults.eps=1e-9", ("adam_defaults.eps", 1e-9)),  # YAML 1.1 alone would read a string
        ("TRAINING_STAGES[0].window_sizes=[2, 5]", ("TRAINING_STAGES[0].window_sizes", [2, 5])),
        ("Hyperparameters.save_checkpoint=true", ("Hyperparameters.save_checkpoint", True)),
        ('Hyperparameters.train_files="data/*.bin"', ("Hyperparameters.train_files", "data/*.bin")),
        ("muon_defaults.lr=", ("muon_defaults.lr", None)),
    ],
)
def test_set_values_are_parsed_as_yaml(item, expected):
    assert parse_assignment(item) == expected


def test_a_set_without_equals_fails():
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_assignments(["Hyperparameters.num_iterations"])


def run_cli(*args: str):
    app = typer.Typer()
    app.add_typer(script_app, name="script")
    return CliRunner().invoke(app, ["script", *args])


def test_cli_patch_writes_the_copy_and_reports_each_change(tmp_path):
    out = tmp_path / "run" / "train_gpt.py"
    result = run_cli("patch", str(SCRIPT_2025), "--set", "Hyperparameters.num_iterations=1750",
                     "--set", "TRAINING_STAGES[1].lr_mul=1.6", "-o", str(out))
    assert result.exit_code == 0, result.output
    source = read_script(SCRIPT_2025)
    expected = patch(source, {"Hyperparameters.num_iterations": 1750, "TRAINING_STAGES[1].lr_mul": 1.6})
    assert out.read_bytes() == expected.encode()
    assert f"{SCRIPT_2025}:20: Hyperparameters.num_iterations: 1695 -> 1750" in result.output
    assert f"{SCRIPT_2025}:43: TRAINING_STAGES[1].lr_mul: 1.52 -> 1.6" in result.output
    assert read_script(SCRIPT_2025) == source  # never edited


def test_cli_patch_with_a_bad_address_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "train_gpt.py"
    result = run_cli("patch", str(SCRIPT_2025), "--set", "Hyperparameters.num_iteration=1", "-o", str(out))
    assert result.exit_code == 2
    assert result.output.startswith("error: no knob 'Hyperparameters.num_iteration'")
    assert "Traceback" not in result.output and not out.exists()
