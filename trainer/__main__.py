"""`python -m trainer` / `torchrun --nproc_per_node=N -m trainer`: one training run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trainer.config import load_config, preset_names
from trainer.errors import InputError
from trainer.events import STATUS_EXIT_CODES
from trainer.horizon import at_horizon

EXAMPLE = """examples:
  python -m trainer --config tiny --set runtime.device=cpu --events run.jsonl
  torchrun --standalone --nproc_per_node=8 -m trainer --config gpt2_124m --set optim.muon_lr=0.04
  python -m trainer --config gpt2_124m --horizon 0.5 --print-config   # half length, cooled down

exit codes: 0 completed, 1 failed, 2 bad input, 3 diverged, 4 stopped (SIGTERM)"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train the speedrun GPT once and stream JSON-line events.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="gpt2_124m", help=f"preset ({', '.join(preset_names())}) or YAML path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, value parsed as YAML (repeatable)")
    p.add_argument("--events", help="write events as JSON lines to this file or pipe ('-' for stdout)")
    p.add_argument("--resume", type=Path, help="continue from a checkpoint directory (or its parent)")
    p.add_argument("--horizon", type=float, default=1.0, metavar="F",
                   help="run F of the steps with every schedule compressed to fit, ending cooled down (e.g. 0.5)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, warm=None) -> int:
    """Run the trainer on command-line arguments; returns the exit code. `warm`: what a warm
    worker kept from its earlier runs (trainer/worker.py)."""
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.horizon != 1.0:
            cfg = at_horizon(cfg, args.horizon)
        if args.print_config:
            print(cfg.to_yaml(), end="")
            return 0
        from trainer.train import train  # imports torch: keep --help and config errors fast

        status = train(cfg, args.events, args.resume, warm)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return STATUS_EXIT_CODES[status]


def leave(code: int) -> None:
    """Exit with `code`; a rank of a gloo (CPU) process group skips the interpreter's teardown.

    gloo's worker threads outlive `destroy_process_group`, and one may still hold the last
    collective's tensors when the interpreter shuts down: freeing them then needs the GIL, which
    aborts a rank that has finished its run (about 1 two-rank run in 17 on 2 cores;
    pytorch/pytorch#179291). Everything the run writes is closed by then."""
    torch = sys.modules.get("torch")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch is not None and not torch.cuda.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    leave(main())
