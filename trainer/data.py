"""FineWeb-format token shards: reading, writing, and feeding them to the trainer.

A shard is a 256 x int32 little-endian header ``[SHARD_MAGIC, SHARD_VERSION, num_tokens, 0, ...]``
followed by ``num_tokens`` uint16 GPT-2 token ids; every document starts with ``BOS_ID``.
"""

import glob
import os
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np

from trainer.config import FIXTURES_PREFIX
from trainer.errors import InputError

BOS_ID = 50256
SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
GPT2_VOCAB_SIZE = 50257
DATA_FILE_KEYS = ("data.train_files", "data.val_files")  # the config's shard globs


def resolve_files(pattern: str, key: str) -> list[Path]:
    """Return the files a glob pattern matches, sorted; ``key`` names it.

    ``~`` and environment variables (``$DATA_DIR/fineweb_train_*.bin``) are expanded here, where
    the trainer runs: on a cluster, each node's own ``DATA_DIR`` (docs/cluster.md).
    """
    unset = [a or b for a, b in re.findall(r"\$(?:\{(\w+)\}|(\w+))", pattern) if (a or b) not in os.environ]
    if unset:
        raise InputError(
            f"{key}: pattern {pattern!r} uses ${unset[0]}, which is not set in the trainer's environment "
            f"on {socket.gethostname()}"
        )
    expanded = os.path.expandvars(os.path.expanduser(pattern))
    files = [Path(m) for m in sorted(glob.glob(expanded)) if Path(m).is_file()]
    if not files:
        shown = repr(pattern) + (f" (= {expanded!r})" if expanded != pattern else "")
        raise InputError(f"{key}: pattern {shown} matches no files (relative to {Path.cwd()})")
    return files


def matches_nothing_here(pattern: str) -> bool:
    """Whether a data pattern matches no file on this machine, where that means every trial will
    fail: not when it names an environment variable (each node expands its own, docs/cluster.md)
    or a file shipped in `@fixtures/`."""
    if "$" in pattern or pattern.startswith(FIXTURES_PREFIX):
        return False
    return not any(Path(m).is_file() for m in glob.glob(os.path.expanduser(pattern)))


def load_shard(path: Path, vocab_size: int = GPT2_VOCAB_SIZE) -> np.ndarray:
    """Validate a shard and return its tokens as a read-only uint16 array (memory-mapped)."""
    if not path.is_file():
        raise InputError(f"{path}: no such shard file")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise InputError(
            f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte shard header: "
            "not a FineWeb-format shard"
        )
    magic, version, num_tokens = (int(x) for x in np.fromfile(path, dtype="<i4", count=3))
    if magic != SHARD_MAGIC:
        raise InputError(
            f"{path}: bad magic number {magic} (expected {SHARD_MAGIC}): not a FineWeb-format shard"
        )
    if version != SHARD_VERSION:
        raise InputError(f"{path}: unsupported shard version {version} (expected {SHARD_VERSION})")
    expected_size = HEADER_BYTES + 2 * num_tokens
    if num_tokens < 0 or size != expected_size:
        raise InputError(
            f"{path}: header says {num_tokens} tokens ({expected_size} bytes) but the file has "
            f"{size} bytes: truncated or corrupt shard"
        )
    if num_tokens == 0:  # np.memmap cannot map zero bytes
        return np.empty(0, dtype=np.uint16)
    tokens = np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(num_tokens,))
    max_id = int(tokens.max())
    if max_id >= vocab_size:
        raise InputError(
            f"{path}: token id {max_id} is out of range for vocab size {vocab_size} "
            f"(expected ids < {vocab_size})"
        )
    return tokens


def write_shard(path: Path, tokens: np.ndarray) -> None:
    """Write tokens as a FineWeb-format shard (ids must fit in uint16)."""
    tokens = np.asarray(tokens)
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= 2**16):
        raise InputError(
            f"{path}: token ids must be in [0, 65535] to fit a uint16 shard, "
            f"got min {int(tokens.min())} and max {int(tokens.max())}"
        )
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, tokens.size)
    with path.open("wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())


class TrainStream:
    """BOS-aligned training sequences from shard files, ``epochs`` passes (modded-nanogpt's rule).

    A sequence starts at a BOS token and spans ``seq_len + 1`` tokens; the next one starts at the
    first BOS at or after ``start + seq_len``. A shard that cannot supply another whole sequence
    is left for the next file, and the last file is followed by the next pass.
    """

    def __init__(
        self, files: list[Path], epochs: int = 1, vocab_size: int = GPT2_VOCAB_SIZE
    ) -> None:
        if not files:
            raise InputError("data.train_files: no training files given")
        if epochs < 1:
            raise InputError(f"data.epochs={epochs}: expected at least 1 pass over the data")
        self.files = list(files)
        self.epochs = epochs
        self.vocab_size = vocab_size
        self._epoch = 0
        self._file_index = 0
        self._position = 0  # the next sequence starts at the first BOS at or after this index
        self._pass_yielded = False  # lets a pass that yields nothing fail instead of looping
        self._loaded_index: int | None = None
        self._tokens = np.empty(0, dtype=np.uint16)
        self._bos = np.empty(0, dtype=np.int64)

    def next_sequences(self, n: int, seq_len: int) -> np.ndarray:
        """Next ``n`` sequences, int64 (n, seq_len + 1): inputs [:, :-1], targets [:, 1:]."""
        if n < 1 or seq_len < 1:
            raise ValueError(f"need n >= 1 and seq_len >= 1, got n={n}, seq_len={seq_len}")
        out = np.empty((n, seq_len + 1), dtype=np.int64)
        for row in out:
            start = self._next_start(seq_len)
            row[:] = self._tokens[start : start + seq_len + 1]
            self._position = start + seq_len
            self._pass_yielded = True
        return out

    def state_dict(self) -> dict[str, Any]:
        """Return where the stream stands, so that ``load_state_dict`` yields the same sequences."""
        return {
            "epoch": self._epoch,
            "file_index": self._file_index,
            "position": self._position,
            "pass_yielded": self._pass_yielded,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()`` taken over the same files."""
        file_index = int(state["file_index"])
        if not 0 <= file_index < len(self.files):
            raise InputError(
                f"resume state: file index {file_index} but data.train_files matches "
                f"{len(self.files)} file(s): the training files changed since the checkpoint"
            )
        self._epoch = int(state["epoch"])
        self._file_index = file_index
        self._position = int(state["position"])
        self._pass_yielded = bool(state["pass_yielded"])

    def _next_start(self, seq_len: int) -> int:
        while True:
            if self._epoch >= self.epochs:
                raise InputError(
                    f"train data exhausted after {self.epochs} pass(es) over {len(self.files)} "
                    f"file(s) ({self._total_tokens()} tokens): raise data.epochs or add files"
                )
            self._load_current()
            i = int(np.searchsorted(self._bos, self._position))
            if i < len(self._bos) and self._bos[i] + seq_len + 1 <= len(self._tokens):
                return int(self._bos[i])
            self._next_file(seq_len)

    def _next_file(self, seq_len: int) -> None:
        self._file_index += 1
        self._position = 0
        if self._file_index < len(self.files):
            return
        if not self._pass_yielded:
            raise InputError(
                f"data.train_files: no sequence of {seq_len + 1} tokens starting at a BOS token "
                f"({BOS_ID}) in {len(self.files)} file(s) ({self._total_tokens()} tokens)"
            )
        self._epoch += 1
        self._file_index = 0
        self._pass_yielded = False

    def _load_current(self) -> None:
        if self._loaded_index == self._file_index:
            return
        self._tokens = load_shard(self.files[self._file_index], self.vocab_size)
        self._bos = np.flatnonzero(self._tokens == BOS_ID)
        self._loaded_index = self._file_index

    def _total_tokens(self) -> int:
        return sum((path.stat().st_size - HEADER_BYTES) // 2 for path in self.files)


def rank_share(n_total: int, rank: int, world_size: int) -> slice:
    """Return the contiguous slice of a step's ``n_total`` sequences that ``rank`` trains on."""
    if n_total % world_size != 0:
        raise InputError(
            f"a step of {n_total} sequences cannot be split evenly over {world_size} ranks"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    share = n_total // world_size
    return slice(rank * share, (rank + 1) * share)


def load_val_tokens(
    files: list[Path], val_tokens: int, vocab_size: int = GPT2_VOCAB_SIZE
) -> np.ndarray:
    """Return the first ``val_tokens + 1`` tokens of the files in order (+1: shifted targets)."""
    if val_tokens < 1:
        raise InputError(f"data.val_tokens={val_tokens}: expected a positive number of tokens")
    needed = val_tokens + 1
    parts: list[np.ndarray] = []
    held = 0
    for path in files:
        tokens = load_shard(path, vocab_size)
        parts.append(np.array(tokens[: needed - held]))
        held += len(parts[-1])
        if held == needed:
            return np.concatenate(parts)
    raise InputError(
        f"data.val_tokens={val_tokens} needs {needed} tokens but data.val_files hold only {held}"
    )


def val_sequences(tokens: np.ndarray, seq_len: int, rank: int, world_size: int) -> list[np.ndarray]:
    """Return validation chunks i = rank, rank + world_size, ... as int64 arrays of seq_len + 1."""
    val_tokens = len(tokens) - 1
    if val_tokens < seq_len or val_tokens % seq_len != 0:
        raise InputError(
            f"data.val_tokens={val_tokens} is not a multiple of data.val_seq_len={seq_len}"
        )
    return [
        tokens[i * seq_len : (i + 1) * seq_len + 1].astype(np.int64)
        for i in range(rank, val_tokens // seq_len, world_size)
    ]


# The synthetic "language" is fixed, so that train and val text drawn with different seeds
# share it and a model trained on one can lower its loss on the other.
_LANGUAGE_SEED = 20240520
_NUM_PHRASES = 4096
_MAX_PHRASE_LEN = 8
_MEAN_DOC_LEN = 300


def synthetic_tokens(
    num_tokens: int, seed: int = 0, vocab_size: int = GPT2_VOCAB_SIZE
) -> np.ndarray:
    """Return ``num_tokens`` deterministic uint16 tokens: BOS-led documents in a toy language.

    The language is a fixed table of phrases (1-8 tokens, Zipf-distributed ids); documents of
    geometric length (mean ~300) are Zipf-weighted phrase sequences. ``seed`` picks the text.
    """
    if not BOS_ID < vocab_size <= 2**16:
        raise InputError(
            f"vocab_size={vocab_size}: expected {BOS_ID + 1}..{2**16} (BOS and uint16 ids)"
        )
    if num_tokens < 1:
        raise InputError(f"num_tokens={num_tokens}: expected at least 1 token")
    rng = np.random.default_rng(seed)
    is_bos = _document_starts(rng, num_tokens)
    out = np.full(num_tokens, BOS_ID, dtype=np.uint16)
    out[~is_bos] = _phrase_text(rng, num_tokens - int(is_bos.sum()), vocab_size)
    return out


def _document_starts(rng: np.random.Generator, num_tokens: int) -> np.ndarray:
    # Draw about twice the expected number of documents at once; top up only if still short.
    doc_lens = rng.geometric(1 / _MEAN_DOC_LEN, size=num_tokens // _MEAN_DOC_LEN * 2 + 16) + 1
    while doc_lens.sum() < num_tokens:
        more = rng.geometric(1 / _MEAN_DOC_LEN, size=len(doc_lens)) + 1
        doc_lens = np.concatenate([doc_lens, more])
    starts = np.cumsum(doc_lens) - doc_lens
    is_bos = np.zeros(num_tokens, dtype=bool)
    is_bos[starts[starts < num_tokens]] = True
    return is_bos


def _phrase_text(rng: np.random.Generator, num_tokens: int, vocab_size: int) -> np.ndarray:
    language = np.random.default_rng(_LANGUAGE_SEED)
    content_ids = np.delete(np.arange(vocab_size), BOS_ID)
    phrase_lens = language.integers(1, _MAX_PHRASE_LEN + 1, size=_NUM_PHRASES)
    phrase_store = language.permutation(content_ids)[
        language.choice(len(content_ids), size=int(phrase_lens.sum()), p=_zipf(len(content_ids)))
    ]
    phrase_p = _zipf(_NUM_PHRASES)
    mean_len = float(phrase_p @ phrase_lens)
    phrases = rng.choice(_NUM_PHRASES, size=int(num_tokens / mean_len * 1.2) + 16, p=phrase_p)
    while phrase_lens[phrases].sum() < num_tokens:
        phrases = np.concatenate([phrases, rng.choice(_NUM_PHRASES, size=len(phrases), p=phrase_p)])
    # Index of every token of every chosen phrase in the store: phrase start + offset within it.
    lens = phrase_lens[phrases]
    phrase_starts = np.cumsum(phrase_lens) - phrase_lens
    within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    return phrase_store[np.repeat(phrase_starts[phrases], lens) + within][:num_tokens]


def _zipf(n: int) -> np.ndarray:
    # Zipf-Mandelbrot weights, the usual fit to word frequencies in text.
    weights = 1.0 / (np.arange(n) + 2.7)
    return weights / weights.sum()


# One FineWeb shard's worth; generating costs about 40 bytes of memory a token
MAX_SYNTHETIC_TOKENS = 100_000_000


def write_synthetic(out_dir: Path, train_tokens: int, val_tokens: int, seed: int = 0) -> list[Path]:
    """Write ``synthetic_train_000001.bin`` and ``synthetic_val_000000.bin``; return their paths."""
    for key, count in (("train_tokens", train_tokens), ("val_tokens", val_tokens)):
        if not 1 <= count <= MAX_SYNTHETIC_TOKENS:
            raise InputError(f"{key}={count}: expected 1 to {MAX_SYNTHETIC_TOKENS:,} tokens")
    out_dir.mkdir(parents=True, exist_ok=True)
    train_path = out_dir / "synthetic_train_000001.bin"
    val_path = out_dir / "synthetic_val_000000.bin"
    # Seeds 2s and 2s+1 keep train and val different for every user seed s.
    write_shard(train_path, synthetic_tokens(train_tokens, seed=2 * seed))
    write_shard(val_path, synthetic_tokens(val_tokens, seed=2 * seed + 1))
    return [train_path, val_path]
