"""A script base is a script and its folder: knobs across files, patched folders, a run's own
working directory, the script's exception, its interpreter, and quoted values."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer.errors import InputError
from trainer.script.failure import summarize
from trainer.script.folder import folder_knobs, lay_out, open_folder, patched_files, write_copy
from trainer.script.patch import parse_assignment
from trainer.script.workdir import make_workdir, run_id_folders

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def head_shaped(tmp_path) -> Path:
    """A folder in HEAD's shape: the script imports two siblings, one of them through the other,
    reads one by its own folder, and has data beside it that no run may copy."""
    root = tmp_path / "repo"
    write(root / "kernels.py", """\
        from helpers import SCALE

        class Softcap:
            @staticmethod
            def forward(x, A=23.0):
                return A * SCALE * x
        """)
    write(root / "helpers.py", "SCALE = 1.0\n")
    write(root / "unrelated.py", "LR = 0.1\n")
    write(root / "data" / "shard.bin", "tokens")
    return write(root / "train_gpt.py", """\
        import os, sys
        from kernels import Softcap
        with open(os.path.join(os.path.dirname(sys.argv[0]), "kernels.py")) as f:
            code = f.read()
        num_iterations = 100
        print(Softcap.forward(1.0), num_iterations, "A=" in code)
        """)


def test_a_script_s_folder_is_the_modules_it_imports_at_any_depth(head_shaped):
    assert open_folder(head_shaped).modules == ("kernels.py", "helpers.py")


def test_knobs_of_imported_modules_are_addressed_by_their_file(head_shaped):
    addresses = [address for address, _ in folder_knobs(open_folder(head_shaped))]
    assert "num_iterations" in addresses
    assert "kernels.py:Softcap.forward.A" in addresses and "helpers.py:SCALE" in addresses
    assert not any(a.startswith("unrelated.py:") for a in addresses)


def test_a_patch_changes_only_the_span_of_the_file_that_holds_the_knob(head_shaped):
    patched = patched_files(open_folder(head_shaped), {"kernels.py:Softcap.forward.A": 30.0})
    assert set(patched) == {"train_gpt.py", "kernels.py"}
    assert patched["train_gpt.py"] == head_shaped.read_text()
    original = (head_shaped.parent / "kernels.py").read_text()
    assert patched["kernels.py"] == original.replace("A=23.0", "A=30.0")


@pytest.mark.parametrize("address, says", [
    ("unrelated.py:LR", "train_gpt.py does not import unrelated.py"),
    ("missing.py:LR", "no missing.py beside train_gpt.py"),
])
def test_a_knob_in_a_file_the_script_does_not_import_is_refused(head_shaped, address, says):
    with pytest.raises(InputError) as info:
        patched_files(open_folder(head_shaped), {address: 1.0})
    assert says in str(info.value) and "kernels.py, helpers.py" in str(info.value)


def test_an_unknown_knob_of_a_module_names_the_module(head_shaped):
    with pytest.raises(InputError, match=r"no knob 'Softcap.forward.B' in .*kernels.py"):
        patched_files(open_folder(head_shaped), {"kernels.py:Softcap.forward.B": 1.0})


def test_a_trial_s_code_folder_runs_with_its_siblings_linked_not_copied(head_shaped, tmp_path):
    folder = open_folder(head_shaped)
    code = lay_out(folder, patched_files(folder, {"kernels.py:Softcap.forward.A": 2.0}), tmp_path / "trial" / "code")
    assert not code.is_symlink() and not (code.parent / "kernels.py").is_symlink()
    assert (code.parent / "helpers.py").is_symlink() and (code.parent / "data").is_symlink()
    run = subprocess.run([sys.executable, str(code)], capture_output=True, text=True, cwd=tmp_path)
    assert run.stdout.split() == ["2.0", "100", "True"], run.stderr


def test_a_copied_folder_holds_the_script_and_every_module_it_imports(head_shaped, tmp_path):
    folder = open_folder(head_shaped)
    written = write_copy(folder, patched_files(folder, {"num_iterations": 7}), tmp_path / "out")
    assert sorted(p.name for p in written) == ["helpers.py", "kernels.py", "train_gpt.py"]
    assert not (tmp_path / "out" / "data").exists() and not (tmp_path / "out" / "unrelated.py").exists()
    run = subprocess.run([sys.executable, "train_gpt.py"], capture_output=True, text=True, cwd=tmp_path / "out")
    assert run.stdout.split() == ["23.0", "7", "True"], run.stderr


def test_a_run_s_working_directory_links_the_user_s_files_and_has_logs_of_its_own(tmp_path):
    user = tmp_path / "user"
    write(user / "data" / "x.bin", "x")
    write(user / "logs" / "old.txt", "an earlier run's log")
    work = make_workdir(user, tmp_path / "trial" / "work", 'run_id = f"final/{uuid.uuid4()}"\n')
    assert (work / "data").is_symlink() and (work / "data" / "x.bin").read_text() == "x"
    assert not (work / "logs").is_symlink() and (work / "logs" / "final").is_dir()
    assert not (work / "logs" / "old.txt").exists()


def test_a_run_s_working_directory_inside_the_user_s_does_not_link_to_itself(tmp_path):
    write(tmp_path / "data" / "x.bin", "x")
    work = make_workdir(tmp_path, tmp_path / "sweeps" / "s" / "trial_0000" / "work", "")
    assert (work / "data").is_symlink() and not (work / "sweeps").exists()


@pytest.mark.parametrize("source, folders", [
    ("class Hyperparameters:\n    run_id = f'final/{uuid.uuid4()}'\n", ["final"]),
    ("args.run_id = 'a/b/c'\n", ["a/b"]),
    ("run_id: str = f'{uuid.uuid4()}'\n", []),
])
def test_the_folders_a_run_id_names_are_read_from_its_literal(source, folders):
    assert run_id_folders(source) == folders


RANK_TRACEBACK = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "/t/code/train_gpt.py", line 12, in <module>
[rank0]:     from kernels import Softcap
[rank0]:   File "/t/code/kernels.py", line 3, in <module>
[rank0]:     import triton
[rank0]: ModuleNotFoundError: No module named 'triton'
E1208 torch/distributed/elastic/multiprocessing/api.py:882] failed (exitcode: 1)
Traceback (most recent call last):
  File "/usr/lib/python3.12/site-packages/torch/distributed/run.py", line 900, in main
    run(args)
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
"""


def test_a_failed_script_s_error_is_its_rank_s_exception_at_its_own_line():
    summary = summarize(RANK_TRACEBACK.splitlines(keepends=True), Path("/t/code"))
    assert summary == "ModuleNotFoundError: No module named 'triton' (kernels.py:3)"


def test_a_failure_without_a_traceback_has_no_summary():
    assert summarize(["Killed\n"], Path("/t/code")) is None


@pytest.mark.parametrize("item, value", [
    ('TRAIN_STEPS="2800"', "2800"),
    ("TRAIN_STEPS='2800'", "2800"),
    ("TRAIN_STEPS=!!str 2800", "2800"),
    ("TRAIN_STEPS=2800", 2800),
    ("lr=1e-3", 0.001),
])
def test_quoted_values_stay_strings(item, value):
    assert parse_assignment(item)[1] == value and type(parse_assignment(item)[1]) is type(value)


def test_a_string_of_digits_knob_takes_a_quoted_value(tmp_path):
    script = write(tmp_path / "train_gpt.py", 'import os\nsteps = int(os.environ.get("TRAIN_STEPS", "2900"))\n')
    address = next(a for a, k in folder_knobs(open_folder(script)) if k.value == "2900")
    patched = patched_files(open_folder(script), dict([parse_assignment(f'{address}="2800"')]))
    assert '"2800"' in patched["train_gpt.py"]


def test_the_script_runs_under_the_interpreter_it_is_given(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    script = write(tmp_path / "train_gpt.py", """\
        import sys
        print(sys.prefix)
        print("step:0/0 val_loss:1.0 train_time:0.5s step_avg:nanms")
        """)
    events = tmp_path / "run" / "events.jsonl"
    result = subprocess.run([sys.executable, "-m", "trainer.script", "--script", str(script), "--events", str(events),
                             "--python", str(venv)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(venv)
    end = json.loads(events.read_text().splitlines()[-1])
    assert end["status"] == "completed" and end["train_time_ms"] == 500.0


def test_an_interpreter_that_is_not_one_exits_2(tmp_path):
    script = write(tmp_path / "train_gpt.py", "x = 1\n")
    result = subprocess.run([sys.executable, "-m", "trainer.script", "--script", str(script),
                             "--python", str(tmp_path / "nope")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and result.stderr.startswith(f"error: --python {tmp_path / 'nope'}: not an executable")


def test_a_rank_that_exits_without_a_traceback_is_not_blamed_on_torchrun():
    launcher_only = RANK_TRACEBACK.split("E1208", 1)[1].splitlines(keepends=True)
    assert summarize(["the trials never ran all at once\n", *launcher_only], Path("/t/code")) is None


def test_a_script_without_the_sibling_it_reads_beside_itself_is_refused_before_it_runs(head_shaped):
    (head_shaped.parent / "kernels.py").unlink()
    with pytest.raises(InputError, match=r"train_gpt.py:3: the script reads kernels.py beside itself, and .* has none"):
        open_folder(head_shaped)
