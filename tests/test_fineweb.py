"""Specification of trainer.fineweb and `speedrun data`, against a local stand-in of the hub."""

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from huggingface_hub import constants
from typer.testing import CliRunner

from orchestrator.cli_data import data_app
from trainer.data import BOS_ID, load_shard, synthetic_tokens, write_shard
from trainer.errors import InputError
from trainer.fineweb import FINEWEB_REPO, VAL_SHARD, download_fineweb, train_shard_name

REPO = FINEWEB_REPO  # the stand-in serves a tiny copy under the real repo id
CORRUPT_REPO = "test-org/fineweb-corrupt"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(ThreadingHTTPServer):
    """Serves files at /datasets/{repo}/resolve/main/{file} as the hub does; logs requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.files = files
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def gets(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.requests if method == "GET"]


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, with_body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        prefix, _, filename = self.path.partition("/resolve/main/")
        body = self.server.files.get(f"{prefix.removeprefix('/datasets/')}/{filename}")
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass  # keep test output clean; requests are recorded in server.requests


def shard_bytes(tmp_path: Path, name: str, seed: int) -> bytes:
    path = tmp_path / name
    write_shard(path, synthetic_tokens(2000, seed=seed))
    return path.read_bytes()


@pytest.fixture(autouse=True)
def isolated_hf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads its environment once, at import, so its constants must follow too.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    built = tmp_path / "hub_files"
    built.mkdir()
    good = {VAL_SHARD: shard_bytes(built, VAL_SHARD, 0)}
    good |= {train_shard_name(i): shard_bytes(built, train_shard_name(i), i) for i in (1, 2, 3)}
    files = {f"{REPO}/{name}": body for name, body in good.items()}
    files |= {f"{CORRUPT_REPO}/{name}": body for name, body in good.items()}
    files[f"{CORRUPT_REPO}/{train_shard_name(2)}"] = b"\x01\x02" * 600  # bad magic number
    server = FakeHub(files)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_downloads_val_and_first_n_train_shards(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    paths = download_fineweb(dest, 2, repo_id=REPO, endpoint=hub.url, progress=False)
    assert paths == [dest / VAL_SHARD, dest / train_shard_name(1), dest / train_shard_name(2)]
    for path in paths:
        assert load_shard(path)[0] == BOS_ID
    assert sorted(hub.gets()) == sorted(p.name for p in paths)


def test_second_call_skips_present_valid_shards(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    download_fineweb(dest, 2, repo_id=REPO, endpoint=hub.url, progress=False)
    hub.requests.clear()
    download_fineweb(dest, 2, repo_id=REPO, endpoint=hub.url, progress=False)
    assert hub.requests == []


def test_progress_says_which_files_were_skipped(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "data"
    download_fineweb(dest, 1, repo_id=REPO, endpoint=hub.url, progress=False)
    download_fineweb(dest, 2, repo_id=REPO, endpoint=hub.url, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert f"{train_shard_name(1)}: present, skipped" in lines
    assert f"{train_shard_name(2)}: downloaded, 2,000 tokens" in lines


def test_present_but_corrupt_shard_is_downloaded_again(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    download_fineweb(dest, 1, repo_id=REPO, endpoint=hub.url, progress=False)
    corrupted = dest / train_shard_name(1)
    corrupted.write_bytes(corrupted.read_bytes()[:-2])  # truncated
    hub.requests.clear()
    download_fineweb(dest, 1, repo_id=REPO, endpoint=hub.url, progress=False)
    assert hub.gets() == [train_shard_name(1)]
    assert len(load_shard(corrupted)) == 2000


def test_corrupt_shard_on_the_hub_is_an_input_error_naming_it(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=rf"{train_shard_name(2)}: bad magic number"):
        download_fineweb(
            tmp_path / "data", 2, repo_id=CORRUPT_REPO, endpoint=hub.url, progress=False
        )


def test_file_missing_on_the_hub_is_an_input_error_naming_it(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=rf"{train_shard_name(4)}: download from .* failed.*HF_ENDPOINT"
    ):
        download_fineweb(tmp_path / "data", 4, repo_id=REPO, endpoint=hub.url, progress=False)


@pytest.mark.parametrize("shards", [0, 104])
def test_shard_count_outside_1_to_103_is_rejected(shards: int, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=rf"shards={shards}: expected 1\.\.103"):
        download_fineweb(tmp_path / "data", shards, progress=False)


# --- the `speedrun data` commands ---------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    return app


def test_cli_fineweb_downloads_shards(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "fw"
    result = CliRunner().invoke(
        cli(), ["data", "fineweb", "--shards", "2", "--dir", str(dest), "--endpoint", hub.url]
    )
    assert result.exit_code == 0, result.output
    assert "3 shard(s) ready" in result.stdout
    assert [
        len(load_shard(dest / name))
        for name in (VAL_SHARD, train_shard_name(1), train_shard_name(2))
    ] == [2000] * 3


def test_cli_reports_input_errors_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["data", "fineweb", "--shards", "0", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: shards=0: expected 1..103")
    assert "Traceback" not in result.output


def test_cli_synthetic_writes_valid_shards(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    result = CliRunner().invoke(
        cli(), ["data", "synthetic", "--tokens", "4000", "--val-tokens", "1025", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    train, val = out / "synthetic_train_000001.bin", out / "synthetic_val_000000.bin"
    assert str(train) in result.stdout and str(val) in result.stdout
    assert (len(load_shard(train)), len(load_shard(val))) == (4000, 1025)


@pytest.mark.parametrize("command", ["fineweb", "synthetic"])
def test_cli_help_shows_an_example(command: str) -> None:
    result = CliRunner().invoke(cli(), ["data", command, "--help"])
    assert result.exit_code == 0
    assert f"Example: speedrun data {command}" in result.stdout
