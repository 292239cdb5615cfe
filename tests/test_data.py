"""Specification of trainer.data: shard files, the training stream and validation chunks."""

from pathlib import Path

import numpy as np
import pytest

from trainer.data import (
    BOS_ID,
    HEADER_BYTES,
    SHARD_MAGIC,
    TrainStream,
    load_shard,
    load_val_tokens,
    rank_share,
    resolve_files,
    synthetic_tokens,
    val_sequences,
    write_shard,
    write_synthetic,
)
from trainer.errors import InputError

FIXTURE = Path(__file__).parent.parent / "trainer" / "fixtures" / "fixture_train_000001.bin"
B = BOS_ID


def shard(path: Path, tokens: list[int] | np.ndarray) -> Path:
    write_shard(path, np.asarray(tokens, dtype=np.int64))
    return path


def header(magic: int = SHARD_MAGIC, version: int = 1, num_tokens: int = 0) -> bytes:
    words = np.zeros(256, dtype="<i4")
    words[:3] = (magic, version, num_tokens)
    return words.tobytes()


# --- shard files --------------------------------------------------------------------------


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    tokens = np.array([B, 0, 1, 50255, B, 7], dtype=np.uint16)
    path = shard(tmp_path / "a.bin", tokens)
    assert path.stat().st_size == HEADER_BYTES + 2 * len(tokens)
    np.testing.assert_array_equal(load_shard(path), tokens)


def test_load_shard_rejects_file_shorter_than_header(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match=r"short\.bin: 100 bytes is shorter than the 1024-byte"):
        load_shard(path)


def test_load_shard_rejects_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(header(magic=1234))
    with pytest.raises(InputError, match=r"x\.bin: bad magic number 1234 \(expected 20240520\)"):
        load_shard(path)


def test_load_shard_rejects_bad_version(tmp_path: Path) -> None:
    path = tmp_path / "v.bin"
    path.write_bytes(header(version=7))
    with pytest.raises(InputError, match=r"v\.bin: unsupported shard version 7 \(expected 1\)"):
        load_shard(path)


def test_load_shard_rejects_size_disagreeing_with_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.bin"
    path.write_bytes(header(num_tokens=10) + b"\0\0" * 4)
    with pytest.raises(
        InputError,
        match=r"cut\.bin: header says 10 tokens \(1044 bytes\) but the file has 1032 bytes",
    ):
        load_shard(path)


def test_load_shard_rejects_token_outside_vocab(tmp_path: Path) -> None:
    path = shard(tmp_path / "big.bin", [B, 3, 60000, 4])
    with pytest.raises(
        InputError, match=r"big\.bin: token id 60000 is out of range for vocab size 50257"
    ):
        load_shard(path)


def test_load_shard_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.bin: no such shard file"):
        load_shard(tmp_path / "nope.bin")


def test_write_shard_rejects_ids_that_do_not_fit_uint16(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"w\.bin: token ids must be in \[0, 65535\]"):
        write_shard(tmp_path / "w.bin", np.array([B, 70000]))
    with pytest.raises(InputError, match=r"w\.bin: .* got min -1"):
        write_shard(tmp_path / "w.bin", np.array([-1, 5]))


def test_resolve_files_sorts_matches(tmp_path: Path) -> None:
    for name in ("t_000002.bin", "t_000001.bin", "other.txt"):
        (tmp_path / name).write_bytes(b"")
    assert resolve_files(str(tmp_path / "t_*.bin"), "data.train_files") == [
        tmp_path / "t_000001.bin",
        tmp_path / "t_000002.bin",
    ]


def test_resolve_files_names_key_and_pattern_when_nothing_matches(tmp_path: Path) -> None:
    pattern = str(tmp_path / "missing_*.bin")
    with pytest.raises(
        InputError, match=r"data\.train_files: pattern '.*missing_\*\.bin' matches no files"
    ):
        resolve_files(pattern, "data.train_files")


def test_resolve_files_expands_environment_variables(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "t_000001.bin").write_bytes(b"")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert resolve_files("$DATA_DIR/t_*.bin", "data.train_files") == [tmp_path / "t_000001.bin"]
    assert resolve_files("${DATA_DIR}/t_*.bin", "data.train_files") == [tmp_path / "t_000001.bin"]
    with pytest.raises(InputError, match=r"pattern '\$DATA_DIR/v_\*\.bin' \(= '.*/v_\*\.bin'\) matches no files"):
        resolve_files("$DATA_DIR/v_*.bin", "data.val_files")


def test_resolve_files_names_an_unset_variable(monkeypatch) -> None:
    monkeypatch.delenv("DATA_DIR", raising=False)
    with pytest.raises(InputError, match=r"data\.val_files: pattern '\$DATA_DIR/v_\*\.bin' uses \$DATA_DIR, which is not set"):
        resolve_files("$DATA_DIR/v_*.bin", "data.val_files")


def test_fixture_is_a_valid_shard_of_bos_led_documents() -> None:
    tokens = load_shard(FIXTURE)
    assert len(tokens) == 700_000
    assert tokens[0] == BOS_ID
    sequences = TrainStream([FIXTURE]).next_sequences(8, 1024)
    assert (sequences[:, 0] == BOS_ID).all()


# --- the training stream ------------------------------------------------------------------


def test_sequences_start_at_bos_and_have_seq_len_plus_one_tokens(tmp_path: Path) -> None:
    path = shard(tmp_path / "t.bin", [5, 6, B, 1, 2, 3, B, 4, 5, 6, 7])
    sequences = TrainStream([path]).next_sequences(2, 3)
    assert sequences.dtype == np.int64
    np.testing.assert_array_equal(sequences, [[B, 1, 2, 3], [B, 4, 5, 6]])


def test_next_sequence_starts_at_first_bos_at_or_after_start_plus_seq_len(tmp_path: Path) -> None:
    # First sequence at 0 spans 0..4; the search starts at 4, skipping the BOS at 2.
    path = shard(tmp_path / "t.bin", [B, 1, B, 2, 3, 4, B, 5, 6, 7, 8, 9])
    stream = TrainStream([path])
    first, second = stream.next_sequences(2, 4)
    np.testing.assert_array_equal(first, [B, 1, B, 2, 3])
    np.testing.assert_array_equal(second, [B, 5, 6, 7, 8])


def test_shard_that_cannot_supply_a_whole_sequence_moves_on_to_next_file(tmp_path: Path) -> None:
    a = shard(tmp_path / "a.bin", [B, 1, 2, B, 3])  # second BOS has only 2 tokens left
    b = shard(tmp_path / "b.bin", [9, B, 4, 5])
    np.testing.assert_array_equal(TrainStream([a, b]).next_sequences(2, 2), [[B, 1, 2], [B, 4, 5]])


def test_each_epoch_repeats_the_same_sequences(tmp_path: Path) -> None:
    a = shard(tmp_path / "a.bin", [B, 1, 2, B, 3, 4])
    b = shard(tmp_path / "b.bin", [B, 5, 6])
    stream = TrainStream([a, b], epochs=2)
    first_pass = stream.next_sequences(3, 2)
    np.testing.assert_array_equal(stream.next_sequences(3, 2), first_pass)


def test_exhausted_data_raises_clear_error(tmp_path: Path) -> None:
    path = shard(tmp_path / "a.bin", [B, 1, 2, B, 3, 4])
    stream = TrainStream([path], epochs=1)
    stream.next_sequences(2, 2)
    with pytest.raises(
        InputError,
        match=r"train data exhausted after 1 pass\(es\) over 1 file\(s\) \(6 tokens\): "
        r"raise data\.epochs or add files",
    ):
        stream.next_sequences(1, 2)


def test_pass_without_any_sequence_raises_instead_of_looping(tmp_path: Path) -> None:
    path = shard(tmp_path / "a.bin", [B, 1, 2])
    with pytest.raises(InputError, match=r"no sequence of 11 tokens starting at a BOS"):
        TrainStream([path], epochs=10**9).next_sequences(1, 10)


def test_resumed_stream_continues_with_the_same_sequences(tmp_path: Path) -> None:
    files = [shard(tmp_path / f"t{i}.bin", synthetic_tokens(3000, seed=i)) for i in range(3)]
    reference = TrainStream(files, epochs=3)
    reference.next_sequences(5, 64)
    state = reference.state_dict()
    expected = reference.next_sequences(40, 64)  # crosses files and a pass boundary

    resumed = TrainStream(files, epochs=3)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.next_sequences(40, 64), expected)


def test_resume_rejects_state_from_a_longer_file_list(tmp_path: Path) -> None:
    path = shard(tmp_path / "a.bin", [B, 1, 2])
    state = {"epoch": 0, "file_index": 4, "position": 0, "pass_yielded": True}
    with pytest.raises(InputError, match=r"file index 4 but data\.train_files matches 1 file"):
        TrainStream([path]).load_state_dict(state)


# --- splitting over ranks -----------------------------------------------------------------


def test_rank_share_gives_each_rank_a_contiguous_equal_slice() -> None:
    assert [rank_share(8, r, 4) for r in range(4)] == [
        slice(0, 2),
        slice(2, 4),
        slice(4, 6),
        slice(6, 8),
    ]


def test_rank_share_rejects_uneven_split() -> None:
    with pytest.raises(
        InputError, match="a step of 6 sequences cannot be split evenly over 4 ranks"
    ):
        rank_share(6, 0, 4)


# --- validation ---------------------------------------------------------------------------


def test_val_tokens_are_the_first_tokens_across_files(tmp_path: Path) -> None:
    a = shard(tmp_path / "a.bin", [B, 1, 2])
    b = shard(tmp_path / "b.bin", [B, 3, 4, 5])
    np.testing.assert_array_equal(load_val_tokens([a, b], 4), [B, 1, 2, B, 3])


def test_val_tokens_need_one_more_token_than_requested(tmp_path: Path) -> None:
    path = shard(tmp_path / "a.bin", [B, 1, 2, 3])
    with pytest.raises(
        InputError, match=r"data\.val_tokens=4 needs 5 tokens but data\.val_files hold only 4"
    ):
        load_val_tokens([path], 4)


def test_val_tokens_reject_an_invalid_file_by_name(tmp_path: Path) -> None:
    path = tmp_path / "val.bin"
    path.write_bytes(header(magic=99))
    with pytest.raises(InputError, match=r"val\.bin: bad magic number 99"):
        load_val_tokens([path], 4)


def test_val_sequences_are_shifted_chunks_of_seq_len_plus_one() -> None:
    tokens = np.arange(7, dtype=np.uint16)
    chunks = val_sequences(tokens, 3, rank=0, world_size=1)
    assert [c.tolist() for c in chunks] == [[0, 1, 2, 3], [3, 4, 5, 6]]
    assert all(c.dtype == np.int64 for c in chunks)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_val_sequences_over_ranks_are_the_one_rank_sequences(world_size: int) -> None:
    tokens = synthetic_tokens(10 * 16 + 1, seed=3)
    single = val_sequences(tokens, 16, rank=0, world_size=1)
    shares = [val_sequences(tokens, 16, rank=r, world_size=world_size) for r in range(world_size)]
    merged = [shares[i % world_size][i // world_size] for i in range(len(single))]
    assert sum(len(s) for s in shares) == len(single)
    for got, want in zip(merged, single, strict=True):
        np.testing.assert_array_equal(got, want)


def test_val_sequences_reject_token_count_not_a_multiple_of_seq_len() -> None:
    with pytest.raises(
        InputError, match=r"data\.val_tokens=10 is not a multiple of data\.val_seq_len=4"
    ):
        val_sequences(np.zeros(11, dtype=np.uint16), 4, rank=0, world_size=1)


# --- synthetic data -----------------------------------------------------------------------


def test_synthetic_tokens_are_valid_bos_led_documents() -> None:
    tokens = synthetic_tokens(20_000, seed=1)
    assert tokens.dtype == np.uint16 and len(tokens) == 20_000
    assert tokens[0] == BOS_ID
    assert int(tokens.max()) < 50257
    assert 10 < int((tokens == BOS_ID).sum()) < 200  # documents of a few hundred tokens


def test_synthetic_tokens_are_deterministic_by_seed() -> None:
    np.testing.assert_array_equal(synthetic_tokens(5000, seed=4), synthetic_tokens(5000, seed=4))
    assert not np.array_equal(synthetic_tokens(5000, seed=4), synthetic_tokens(5000, seed=5))


def test_synthetic_tokens_have_learnable_structure() -> None:
    # Knowing the previous token must say much more than token frequencies alone.
    tokens = synthetic_tokens(200_000, seed=0).astype(np.int64)
    unigram = _entropy(np.unique(tokens, return_counts=True)[1])
    pairs = np.unique(tokens[:-1] * 2**16 + tokens[1:], return_counts=True)[1]
    assert _entropy(pairs) - unigram < 0.5 * unigram


def _entropy(counts: np.ndarray) -> float:
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_write_synthetic_writes_valid_different_train_and_val_shards(tmp_path: Path) -> None:
    train, val = write_synthetic(tmp_path / "syn", train_tokens=3000, val_tokens=2000, seed=0)
    assert (train.name, val.name) == ("synthetic_train_000001.bin", "synthetic_val_000000.bin")
    train_tokens, val_tokens = load_shard(train), load_shard(val)
    assert (len(train_tokens), len(val_tokens)) == (3000, 2000)
    assert not np.array_equal(train_tokens[:2000], val_tokens)
