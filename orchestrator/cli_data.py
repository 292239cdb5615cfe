"""The ``speedrun data`` commands: get token shards to train and validate on."""

import os
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.errors import exit_on_input_error
from trainer.data import MAX_SYNTHETIC_TOKENS, load_shard, write_synthetic
from trainer.errors import InputError
from trainer.fineweb import MAX_TRAIN_SHARDS, download_fineweb

data_app = typer.Typer(
    help=(
        "Get token shards: FineWeb10B from the Hugging Face hub, or a synthetic corpus for tests."
        "\n\nExample: speedrun data synthetic --tokens 5000000 --out data/synthetic"
    ),
    no_args_is_help=True,
)


@data_app.command()
def fineweb(
    shards: Annotated[
        int,
        typer.Option(help=f"Train shards to fetch (1..{MAX_TRAIN_SHARDS}), 100M tokens each."),
    ],
    dest: Annotated[Path, typer.Option("--dir", help="Where the shards go.")] = Path(
        "data/fineweb10B"
    ),
    endpoint: Annotated[
        str | None,
        typer.Option(help="Hub URL (a mirror); default: $HF_ENDPOINT, else huggingface.co."),
    ] = None,
) -> None:
    """Download the FineWeb10B val shard and the first N train shards; valid files present are kept.

    Example: speedrun data fineweb --shards 8 --dir data/fineweb10B
    """
    with exit_on_input_error():
        paths = download_fineweb(dest, shards, endpoint=endpoint)
    typer.echo(f"{len(paths)} shard(s) ready in {dest}")


@data_app.command()
def synthetic(
    tokens: Annotated[int, typer.Option(help=f"Tokens in the train shard (at most {MAX_SYNTHETIC_TOKENS:,}).")],
    out: Annotated[Path, typer.Option(help="Directory to write the two shards into.")],
    val_tokens: Annotated[
        int,
        typer.Option(
            help="Tokens in the val shard; data.val_tokens=V needs V+1 (the default fits V=2^20)."
        ),
    ] = 2**20 + 1,
    seed: Annotated[
        int, typer.Option(help="Picks the text; the toy language is the same for all seeds.")
    ] = 0,
) -> None:
    """Write a synthetic train shard and val shard (a learnable toy language) and print their paths.

    Example: speedrun data synthetic --tokens 5000000 --out data/synthetic
    """
    with exit_on_input_error():
        for flag, count in (("--tokens", tokens), ("--val-tokens", val_tokens)):
            if not 1 <= count <= MAX_SYNTHETIC_TOKENS:
                raise InputError(f"{flag} {count}: expected 1 to {MAX_SYNTHETIC_TOKENS:,} tokens (one FineWeb shard; "
                                 "generating that many takes about 4 GB of memory)")
        _writable_folder(out)  # before the tokens are generated, not after
        try:
            paths = write_synthetic(out, tokens, val_tokens, seed=seed)
        except OSError as e:  # the disk filled up, or the folder changed under us
            raise InputError(f"--out {out}: cannot write {e.filename or out}: {e.strerror or e}") from None
        for path in paths:
            typer.echo(f"{path} ({len(load_shard(path)):,} tokens)")


def _writable_folder(out: Path) -> None:
    """Create `out` if missing; InputError naming --out when it cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; expected a folder for the two shards")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {out}: cannot create {e.filename or out}: {e.strerror or e}; "
                         "expected a folder that can be created and written") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: the folder is not writable; expected a folder that can be written")
