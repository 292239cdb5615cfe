"""`python -m trainer.script --script train_gpt.py --set ADDR=VALUE ...`: one run of any speedrun script."""

from __future__ import annotations

import argparse
import sys

from trainer.errors import InputError
from trainer.events import STATUS_EXIT_CODES
from trainer.script.patch import parse_assignments
from trainer.script.run import run_script

EXAMPLE = """examples:
  python -m trainer.script --script train_gpt.py --nproc 8 --events runs/a/events.jsonl \\
      --set Hyperparameters.num_scheduled_iterations=1300 --set 'TRAINING_STAGES[1].lr_mul=1.6'
  speedrun script knobs train_gpt.py --grep lr      # the addresses --set takes

  python -m trainer.script --script modded-nanogpt/train_gpt.py --python ~/envs/record/bin/python \\
      --set 'triton_kernels.py:FusedSoftcappedCrossEntropy.forward.A=23.0'

The script's folder is laid out beside the events file as code/ (patched files, links to the
rest: its imports and reads of its own folder work); it runs in work/, links to --workdir's files
(its relative data paths are its own) and a logs/ of its own. Its `step:N/M val_loss:...` lines
become the trainer's events (start, train, val, end); a run completes only with its final
`step:M/M val_loss:` line.

exit codes: 0 completed, 1 failed, 2 bad input, 3 diverged, 4 stopped (SIGTERM)"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trainer.script",
        description="Run a modded-nanogpt-style train_gpt.py with its literals overridden, streaming JSON-line events.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--script", required=True, help="the train_gpt.py to run (never edited)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="ADDR=VALUE",
                   help="override the literal at ADDR, value parsed as YAML (repeatable)")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs); more than 1 runs torchrun")
    p.add_argument("--events", help="write events as JSON lines to this file ('-' for stdout)")
    p.add_argument("--workdir", default=".",
                   help="the directory whose files the script sees in its working directory (default: this one)")
    p.add_argument("--python", help="the interpreter (or virtual environment) to run the script under "
                                    "(default: this one); a record's own keeps its pinned torch")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        status = run_script(args.script, parse_assignments(args.overrides), args.nproc, args.events, args.workdir,
                            args.python)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return STATUS_EXIT_CODES[status]


if __name__ == "__main__":
    sys.exit(main())
