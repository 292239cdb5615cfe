"""The knobs of a speedrun script: addresses, values, kinds and exact spans (trainer/script/knobs.py).

The fixtures in tests/fixtures_script/ hold every way the records' scripts write a knob; they
are parsed, never run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli_script import script_app
from trainer.errors import InputError
from trainer.script.knobs import Knob, list_knobs, read_script

FIXTURES = Path(__file__).parent / "fixtures_script"
SCRIPT_2025 = FIXTURES / "knobs_2025.py"
SCRIPT_2024 = FIXTURES / "knobs_2024.py"


def knobs_of(path: Path) -> dict[str, Knob]:
    return {k.address: k for k in list_knobs(read_script(path), str(path))}


# address -> (value, source text) of the knobs knobs_2025.py was written to hold
EXPECTED_2025 = {
    "WINDOW": (1728, "1728"),
    "BLOCK_SIZE": (128, "128"),
    "VAL_TOKENS": (10485760, "10 * 1024 * 1024"),
    "NS_COEFFS": ((3.4445, -4.775, 2.0315), "(3.4445, -4.7750, 2.0315)"),
    "NS_COEFFS[1]": (-4.775, "-4.7750"),
    "Hyperparameters.train_files": ("data/fineweb10B/fineweb_train_*.bin", '"data/fineweb10B/fineweb_train_*.bin"'),
    "Hyperparameters.num_iterations": (1695, "1695"),
    "Hyperparameters.cooldown_frac": (0.45, "0.45"),
    "Hyperparameters.weight_decay": (0, "0"),
    "Hyperparameters.batch_size": (524288, "8 * 64 * 1024"),
    "Hyperparameters.eps": (1e-10, "1e-10"),
    "Hyperparameters.logit_shift": (-0.5, "-0.5"),
    "Hyperparameters.save_checkpoint": (False, "False"),
    "TrainingStage.lr_mul": (1.0, "1.0"),
    "TRAINING_STAGES[0].duration": (1 / 3, "1/3"),
    "TRAINING_STAGES[0].batch_size": (131072, "8 * 2048 * 8"),
    "TRAINING_STAGES[0].window_sizes": ((1, 3), "(1, 3)"),
    "TRAINING_STAGES[0].window_sizes[1]": (3, "3"),
    "TRAINING_STAGES[1].lr_mul": (1.52, "1.52"),
    "TRAINING_STAGES[2].batch_size": (393216, "24 * 2048 * 8"),
    "TRAINING_STAGES[2].window_sizes[0]": (5, "5"),
    "TRAINING_STAGES[2].lr_mul": (2, "2"),
    "get_lr.floor": (0.1, "0.1"),
    "get_lr.if{0.55}": (0.55, "0.55"),
    "get_lr.return{0.9}": (0.9, "0.9"),
    "get_lr.return": (1.0, "1.0"),
    "get_muon_momentum.warmup_steps": (300, "300"),
    "get_muon_momentum.momentum_min": (0.85, "0.85"),
    "get_muon_momentum.momentum_max": (0.95, "0.95"),
    "adam_defaults.lr": (0.008, "0.008"),
    "adam_defaults.betas[1]": (0.95, "0.95"),
    "adam_defaults.eps": (1e-10, "1e-10"),
    "muon_defaults.lr": (0.05, "0.05"),
    "muon_defaults.nesterov": (True, "True"),
    'muon_defaults["ns steps"]': (5, "5"),
    "TRAIN_MAX_NUM_DOCS[32768]": (96, "96"),
    "TrainingManager.block_size": (128, "128"),
    "TrainingManager.optimizer.lr": (0.05, "0.05"),
    "TrainingManager.optimizer.weight_decay": (-1.2e-4, "-1.2e-4"),
    "TrainingManager.param_table.embed.lr_mul": (75.0, "75.0"),
    "TrainingManager.param_table.update(0).scalars.lr_mul": (5.0, "5.0"),
    "GPT.num_layers": (12, "12"),
    "Muon.lr": (0.02, "0.02"),
    "Muon.momentum#1": (0.9, "0.9"),
    "Muon.momentum#2": (0.85, "0.85"),
    "optimizer2(0)[1].lr": (0.6, "0.6"),
    "optimizer2.betas[0]": (0.8, "0.8"),
    "optimizer2.fused": (True, "True"),
}


def test_every_kind_of_knob_is_found_with_its_value_and_text():
    found = knobs_of(SCRIPT_2025)
    missing = sorted(set(EXPECTED_2025) - set(found))
    assert not missing, f"not found: {missing}"
    for address, (value, text) in EXPECTED_2025.items():
        knob = found[address]
        assert knob.text == text, address
        if isinstance(value, float):
            assert math.isclose(knob.value, value), address
        else:
            assert knob.value == value, address


def test_a_2024_style_script_gives_exactly_its_knobs():
    assert [(k.address, k.value) for k in list_knobs(read_script(SCRIPT_2024))] == [
        ("Hyperparameters.input_bin", "data/fineweb10B/fineweb_train_*.bin"),
        ("Hyperparameters.batch_size", 512),
        ("Hyperparameters.sequence_length", 1024),
        ("Hyperparameters.num_iterations", 3000),
        ("Hyperparameters.learning_rate", 0.0036),
        ("Hyperparameters.warmdown_iters", 900),
        ("Hyperparameters.val_loss_every", 125),
        ("get_lr.return{1}", 1),
        ("get_lr.return", 1.0),
        ("label", "α→β"),
        ("beta", 0.5),
        ("a", 3.4445),
        ("b", -4.775),
        ("c", 2.0315),
        ("scale", 2**-0.5),
        ("window_schedule[0]", (0.0, 64)),
        ("window_schedule[0][0]", 0.0),
        ("window_schedule[0][1]", 64),
        ("window_schedule[1]", (0.5, 1024)),
        ("window_schedule[1][0]", 0.5),
        ("window_schedule[1][1]", 1024),
        ("optimizer1.betas", (0.9, 0.95)),
        ("optimizer1.betas[0]", 0.9),
        ("optimizer1.betas[1]", 0.95),
        ("optimizer1.weight_decay", 0),
        ("optimizer2.lr{0.1}", 0.1),
        ("optimizer2.momentum", 0.95),
        ("frac(0){500}", 500),
        ("frac(1)", 1),
        ("group.momentum{1}", 1),
        ("group.momentum{0.85}", 0.85),
        ("group.momentum{0.95}", 0.95),
    ]


def test_docstrings_f_strings_and_decorators_are_not_knobs():
    found = knobs_of(SCRIPT_2025)
    assert "Hyperparameters.run_id" not in found  # f"{os.getpid()}"
    assert not [a for a in found if a.startswith("dataclass")]  # @dataclass(slots=True)
    assert all(not isinstance(k.value, str) or "Never run" not in k.value for k in found.values())


def test_kinds_follow_the_literal_and_a_float_annotation():
    found = knobs_of(SCRIPT_2025)
    kinds = {a: found[a].kind for a in (
        "Hyperparameters.num_iterations", "Hyperparameters.cooldown_frac", "Hyperparameters.weight_decay",
        "Hyperparameters.batch_size", "Hyperparameters.save_checkpoint", "Hyperparameters.train_files",
        "TRAINING_STAGES[0].window_sizes", "TRAINING_STAGES[2].lr_mul", "optimizer2.betas",
    )}  # fmt: skip
    assert kinds == {
        "Hyperparameters.num_iterations": "int",
        "Hyperparameters.cooldown_frac": "float",
        "Hyperparameters.weight_decay": "float",  # `weight_decay: float = 0`
        "Hyperparameters.batch_size": "int",
        "Hyperparameters.save_checkpoint": "bool",
        "Hyperparameters.train_files": "str",
        "TRAINING_STAGES[0].window_sizes": "tuple",
        "TRAINING_STAGES[2].lr_mul": "float",  # `lr_mul=2` for the `lr_mul: float` field of TrainingStage
        "optimizer2.betas": "tuple",
    }


@pytest.mark.parametrize("path", [SCRIPT_2025, SCRIPT_2024], ids=lambda p: p.name)
def test_spans_are_exact_in_characters_lines_and_columns(path):
    source = read_script(path)
    lines = source.splitlines(keepends=True)
    for k in list_knobs(source):
        assert source[k.start : k.end] == k.text
        line_start = sum(len(line) for line in lines[: k.line - 1])
        assert k.start == line_start + k.col
        end_line_start = sum(len(line) for line in lines[: k.end_line - 1])
        assert k.end == end_line_start + k.end_col
    beta = knobs_of(path).get("beta")
    if beta is not None:  # after "α→β" on its line: columns count characters, not UTF-8 bytes
        assert beta.col == lines[beta.line - 1].index("0.5")


def test_crlf_and_a_byte_order_mark_keep_addresses_and_texts():
    source = read_script(SCRIPT_2024)
    windows = "\ufeff" + source.replace("\n", "\r\n")
    plain, crlf = list_knobs(source), list_knobs(windows)
    assert [(k.address, k.text, k.line, k.col) for k in plain] == [(k.address, k.text, k.line, k.col) for k in crlf]
    assert all(windows[k.start : k.end] == k.text for k in crlf)


def test_addresses_do_not_move_when_unrelated_code_changes():
    source = read_script(SCRIPT_2025)
    before = {k.address: k.value for k in list_knobs(source)}
    edited = source.replace(
        "\nimport torch\n",
        "\nimport torch\nimport math  # a new import\n\n\ndef helper(x):\n    return math.sqrt(x)\n"
        "\n\nclass Unrelated:\n    pass\n",
    ).replace("\nclass TrainingManager:", "\n# a comment\n\nclass TrainingManager:")
    assert {k.address: k.value for k in list_knobs(edited)} == before


def test_code_moved_into_a_function_keeps_its_addresses():
    module = "adam_defaults = dict(lr=0.008, eps=1e-10)\nstages = [Stage(lr_mul=1.5)]\n"
    method = "class Manager:\n    def __init__(self):\n" + "".join(f"        {line}\n" for line in module.splitlines())
    assert [k.address for k in list_knobs(module)] == [k.address for k in list_knobs(method)] == [
        "adam_defaults.lr", "adam_defaults.eps", "stages[0].lr_mul",
    ]  # fmt: skip


def test_a_syntax_error_names_the_file_and_line():
    with pytest.raises(InputError, match=r"train_gpt.py:2: not valid Python"):
        list_knobs("x = 1\ny = (\n", "train_gpt.py")


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="No such file"):
        read_script(tmp_path / "train_gpt.py")


def run_cli(*args: str):
    app = typer.Typer()
    app.add_typer(script_app, name="script")
    return CliRunner().invoke(app, ["script", *args])


def test_cli_knobs_prints_address_value_and_line():
    result = run_cli("knobs", str(SCRIPT_2025), "--grep", r"^TRAINING_STAGES\[0\]")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ADDRESS", "VALUE", "LINE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == [f"TRAINING_STAGES[0].{name}" for name in (
        "duration", "batch_size", "window_sizes", "window_sizes[0]", "window_sizes[1]", "lr_mul",
    )]  # fmt: skip
    assert rows["TRAINING_STAGES[0].batch_size"].split()[1:] == ["131072", "=", "8", "*", "2048", "*", "8", "42"]


def test_cli_knobs_of_a_missing_file_exits_2():
    result = run_cli("knobs", "no_such_train_gpt.py")
    assert result.exit_code == 2
    assert "error: no_such_train_gpt.py" in result.output
