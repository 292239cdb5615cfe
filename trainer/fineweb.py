"""Download the NanoGPT speedrun's FineWeb10B GPT-2 token shards from the Hugging Face hub."""

import sys
from pathlib import Path

from huggingface_hub import hf_hub_download
from tqdm import tqdm

from trainer.data import load_shard
from trainer.errors import InputError

FINEWEB_REPO = "kjj0/fineweb10B-gpt2"
MAX_TRAIN_SHARDS = 103
VAL_SHARD = "fineweb_val_000000.bin"


def train_shard_name(index: int) -> str:
    """Return the file name of train shard ``index`` (1-based, as in the hub repo)."""
    return f"fineweb_train_{index:06d}.bin"


class _NoProgressBar(tqdm):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **{**kwargs, "disable": True})


def download_fineweb(
    dest: Path,
    num_train_shards: int,
    *,
    repo_id: str = FINEWEB_REPO,
    endpoint: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download the val shard and train shards 1..N into ``dest``; return their paths, val first.

    Valid shards already in ``dest`` are kept; corrupt ones are fetched again. ``endpoint`` is the
    hub URL (default: ``HF_ENDPOINT`` as huggingface_hub read it at import, else huggingface.co).
    """
    if not 1 <= num_train_shards <= MAX_TRAIN_SHARDS:
        raise InputError(
            f"shards={num_train_shards}: expected 1..{MAX_TRAIN_SHARDS} "
            f"({repo_id} has {MAX_TRAIN_SHARDS} train shards of 100M tokens each)"
        )
    names = [VAL_SHARD] + [train_shard_name(i) for i in range(1, num_train_shards + 1)]
    return [_fetch(dest, name, repo_id, endpoint, progress) for name in names]


def _fetch(dest: Path, name: str, repo_id: str, endpoint: str | None, progress: bool) -> Path:
    path = dest / name
    if path.exists():
        try:
            load_shard(path)
            _say(progress, f"{name}: present, skipped")
            return path
        except InputError as err:
            _say(progress, f"{name}: present but invalid ({err}); downloading again")
    try:
        downloaded = hf_hub_download(
            repo_id=repo_id,
            filename=name,
            repo_type="dataset",
            local_dir=dest,
            endpoint=endpoint,
            # The local-dir metadata would vouch for a corrupt file whose etag still matches.
            force_download=path.exists(),
            tqdm_class=None if progress else _NoProgressBar,
        )
    # huggingface_hub signals failures with its own errors, OSError subclasses and its HTTP
    # client's exceptions, which differ between versions; all mean this file could not be fetched.
    except Exception as err:
        detail = " ".join(str(err).split())  # hub errors span several lines
        source = f"{endpoint or 'the Hugging Face hub'} (dataset {repo_id})"
        raise InputError(
            f"{name}: download from {source} failed ({type(err).__name__}: {detail}); "
            "check the network connection, --endpoint / HF_ENDPOINT and the repo id"
        ) from err
    tokens = load_shard(Path(downloaded))
    _say(progress, f"{name}: downloaded, {len(tokens):,} tokens")
    return Path(downloaded)


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, file=sys.stderr, flush=True)
