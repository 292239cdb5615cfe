"""A record log turned back into a runnable folder (trainer/script/extract.py, `speedrun script extract`).

The logs here are written by the tests from tiny code strings, in the shapes modded-nanogpt's
records have: code then a line of 100 '=' (most logs), a '=' line before the code too (2024-10/11),
and the 2026 track-1 shape with sibling modules after `# NAME.py` banners.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli_script import script_app
from trainer.errors import InputError
from trainer.script.extract import extract, split_log

RULE = "=" * 100
CONSOLE = "Running Python 3.12\nstep:0/10 val_loss:10.8258 train_time:0ms step_avg:0.03ms\n"

# A 2026-style record: the script reads its sibling modules from beside itself for the log (as
# modded-nanogpt's train_gpt.py does since 2026-01), imports them, and logs code, rule, output.
RECORD_MAIN = """\
import os
import sys

with open(sys.argv[0]) as f:
    code = f.read()
for name in ("triton_kernels.py", "dc_triton_kernels.py"):
    with open(os.path.join(os.path.dirname(sys.argv[0]), name)) as f:
        code += f"\\n\\n{'-'*40}\\n# {name}\\n{'-'*40}\\n\\n"
        code += f.read()

from triton_kernels import double
from dc_triton_kernels import triple

print(code)
print("=" * 100)
print(f"step:1/1 val_loss:{double(1.5) + triple(1):.4f}")
"""
RECORD_KERNELS = "def double(x):\n    return 2 * x\n"
RECORD_DC_KERNELS = '"""DC kernels."""\n\n\ndef triple(x):\n    return 3 * x'  # no final newline, as some records have


def banner(name: str) -> str:
    return f"\n\n{'-' * 40}\n# {name}\n{'-' * 40}\n\n"


def log_2026(main: str = RECORD_MAIN, kernels: str = RECORD_KERNELS, dc: str = RECORD_DC_KERNELS) -> str:
    # print(code) adds the newline before the rule
    return main + banner("triton_kernels.py") + kernels + banner("dc_triton_kernels.py") + dc + "\n" + RULE + "\n" + CONSOLE


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_a_single_file_log_gives_the_code_above_the_rule_byte_for_byte():
    code = "import os\r\n\nx = 1  \n\n\ndef f():\n    return x\n\n"
    assert split_log(code + RULE + "\n" + CONSOLE + RULE + "\n", "log.txt") == {"train_gpt.py": code}


def test_a_2024_log_opening_with_the_rule_gives_the_code_between_the_first_two_rules():
    code = "import torch\n\nlr = 0.0036\n"
    assert split_log(RULE + "\n" + code + RULE + "\n" + CONSOLE, "log.txt") == {"train_gpt.py": code}


def test_a_2026_log_gives_the_main_code_and_each_banner_embedded_module():
    files = split_log(log_2026(), "log.txt")
    assert files == {
        "train_gpt.py": RECORD_MAIN,
        "triton_kernels.py": RECORD_KERNELS,
        "dc_triton_kernels.py": RECORD_DC_KERNELS + "\n",  # the newline print added before the rule
    }


def test_the_extracted_folder_runs_and_reads_its_siblings_from_beside_itself(tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    write(record / "train_gpt.py", RECORD_MAIN)
    write(record / "triton_kernels.py", RECORD_KERNELS)
    write(record / "dc_triton_kernels.py", RECORD_DC_KERNELS)
    log = subprocess.run([sys.executable, str(record / "train_gpt.py")], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    out = tmp_path / "extracted"
    written = extract(write(tmp_path / "log.txt", log), out)
    assert sorted(p.name for p in written) == ["dc_triton_kernels.py", "train_gpt.py", "triton_kernels.py"]
    # run from elsewhere: the script must find its siblings through sys.argv[0], as the record did
    rerun = subprocess.run([sys.executable, str(out / "train_gpt.py")], cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1] == "step:1/1 val_loss:6.0000"  # imported both siblings
    extracted = {p.name: p.read_text() for p in written}
    assert rerun.stdout.startswith(  # and logged them, read from beside itself
        extracted["train_gpt.py"] + banner("triton_kernels.py") + extracted["triton_kernels.py"]
        + banner("dc_triton_kernels.py") + extracted["dc_triton_kernels.py"]
    )  # fmt: skip


def test_a_file_without_the_rule_is_not_a_log():
    with pytest.raises(InputError, match=r"^notes.txt: not a modded-nanogpt record log: expected .* line of exactly 100 '='"):
        split_log("step:1/1 val_loss:3.27\n" + "=" * 99 + "\n", "notes.txt")


def test_code_that_is_not_python_names_the_log_line():
    text = log_2026(kernels="def double(x):\n    return 2 *\n")
    kernels_line = text[: text.index("def double")].count("\n") + 1
    with pytest.raises(InputError, match=rf"^log.txt:{kernels_line + 1}: the code for triton_kernels.py is not valid Python"):
        split_log(text, "log.txt")


def test_an_existing_file_with_other_content_is_refused_and_nothing_is_written(tmp_path):
    log = write(tmp_path / "log.txt", log_2026())
    out = tmp_path / "out"
    out.mkdir()
    write(out / "triton_kernels.py", "# mine\n")
    with pytest.raises(InputError, match=r"triton_kernels.py: already exists with different content; not overwritten"):
        extract(log, out)
    assert (out / "triton_kernels.py").read_text() == "# mine\n"
    assert sorted(p.name for p in out.iterdir()) == ["triton_kernels.py"]


def test_extracting_again_into_the_same_folder_keeps_identical_files(tmp_path):
    log = write(tmp_path / "log.txt", log_2026())
    first = extract(log, tmp_path / "out")
    assert extract(log, tmp_path / "out") == first


def run_cli(*args: str):
    app = typer.Typer()
    app.add_typer(script_app, name="script")
    return CliRunner().invoke(app, ["script", *args])


def test_cli_extract_prints_each_written_file(tmp_path):
    log = write(tmp_path / "log.txt", log_2026())
    out = tmp_path / "out"
    result = run_cli("extract", str(log), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(out / name) for name in ("train_gpt.py", "triton_kernels.py", "dc_triton_kernels.py")]
    assert (out / "train_gpt.py").read_text() == RECORD_MAIN


def test_cli_extract_of_a_non_log_exits_2_with_one_error_line(tmp_path):
    notes = write(tmp_path / "README.md", "# A record\n\nval_loss 3.2781\n")
    result = run_cli("extract", str(notes), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {notes}: not a modded-nanogpt record log: expected the record's code, then a line of exactly 100 '=', "
        "then the console output (no such line found)"
    ]
    assert not (tmp_path / "out").exists()
