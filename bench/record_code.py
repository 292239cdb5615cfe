"""How much of modded-nanogpt's published code `speedrun script extract` and `knobs` can read.

    python bench/record_code.py --repo /work/.mirror/KellerJordan+modded-nanogpt/repo [--rev HEAD] [--json]

--repo is a modded-nanogpt git directory, bare or a checkout; files are read from the commit --rev
(uncommitted changes of a checkout are not seen). Read:

- every published log with code: each file under records/ (all tracks) that is UTF-8 text with a
  line of exactly 100 '=' (other files there, such as README.md or plain console captures, are
  counted as having no code); each is split with trainer.script.extract.split_log and each file
  it yields is given to list_knobs;
- every .py file under records/, and the .py files at the top of the repository (HEAD's
  train_gpt.py, triton_kernels.py, ...), each given to list_knobs.

Counts are per track, raw and unique: a record publishes several logs of the same code (one per
seed), so logs with an identical code section count once among the unique ones, as do files with
identical content. Each failure is printed once per unique code, with its error. Progress goes to
stderr; --json prints the counts and failures as JSON on stdout instead of the tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.errors import InputError  # noqa: E402
from trainer.script.extract import split_log  # noqa: E402
from trainer.script.knobs import list_knobs  # noqa: E402

RULE = re.compile(r"^={100}(?:\r?\n|\Z)", re.MULTILINE)
TOP = "HEAD"  # the track name of the repository's top-level .py files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, type=Path, help="modded-nanogpt git directory (bare or a checkout)")
    parser.add_argument("--rev", default="HEAD", help="the commit to read (default HEAD)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args()

    tree = ls_tree(args.repo, args.rev)
    records = [(path, oid) for path, oid in tree if path.startswith("records/")]
    top_py = [(path, oid) for path, oid in tree if "/" not in path and path.endswith(".py")]
    blobs = Blobs(args.repo)

    logs = defaultdict(lambda: {"raw": counter("total", "extracted", "failed"), "unique": counter("total", "extracted", "failed")})
    log_files = defaultdict(lambda: {"raw": counter("total", "knobs_ok", "failed"), "unique": counter("total", "knobs_ok", "failed")})
    py_files = defaultdict(lambda: {"raw": counter("total", "knobs_ok", "failed"), "unique": counter("total", "knobs_ok", "failed")})
    no_code: dict[str, int] = defaultdict(int)
    unreadable: list[str] = []
    failures: list[dict] = []
    knobs_of: dict[str, str | None] = {}  # content hash -> list_knobs error (None: fine)
    split_of: dict[str, tuple[dict[str, str] | None, str | None, dict]] = {}  # code hash -> (files, error, failure entry)
    seen_files: dict[tuple[int, str], set[str]] = defaultdict(set)  # (table, track) -> content hashes counted as unique

    def knobs_error(source: str, name: str) -> tuple[str | None, bool]:
        key = digest(source)
        fresh = key not in knobs_of
        if fresh:
            try:
                list_knobs(source, name)
                knobs_of[key] = None
            except InputError as e:
                knobs_of[key] = str(e)
        return knobs_of[key], fresh

    def count_file(table: dict, track: str, source: str, name: str, label: str) -> None:
        error, fresh = knobs_error(source, name)
        key = digest(source)
        unique = key not in seen_files[(id(table), track)]
        seen_files[(id(table), track)].add(key)
        for kind in ("raw", "unique") if unique else ("raw",):
            table[track][kind]["total"] += 1
            table[track][kind]["knobs_ok" if error is None else "failed"] += 1
        if error is not None and fresh:
            failures.append({"track": track, "kind": "knobs", "file": label, "error": error})

    candidates = [(p, o) for p, o in records if not p.endswith(".py")]
    for i, (path, oid) in enumerate(candidates, 1):
        progress(i, len(candidates), "files under records/")
        track = path.split("/")[1]
        data = blobs.get(oid)
        if data is None:
            unreadable.append(path)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # images, archives: not text, not logs
        section = code_section(text)
        if section is None:
            no_code[track] += 1
            continue
        key = digest(section)
        unique = key not in split_of
        if unique:
            try:
                split_of[key] = (split_log(text, path), None, {})
            except InputError as e:
                entry = {"track": track, "kind": "extract", "file": path, "error": str(e), "same_code_logs": 0}
                split_of[key] = (None, str(e), entry)
                failures.append(entry)
        files, error, entry = split_of[key]
        for kind in ("raw", "unique") if unique else ("raw",):
            logs[track][kind]["total"] += 1
            logs[track][kind]["extracted" if error is None else "failed"] += 1
        if error is not None:
            entry["same_code_logs"] += 1
            continue
        for name, source in files.items():
            count_file(log_files, track, source, name, f"{path} -> {name}")

    py = [(p, o, p.split("/")[1]) for p, o in records if p.endswith(".py")] + [(p, o, TOP) for p, o in top_py]
    for i, (path, oid, track) in enumerate(py, 1):
        progress(i, len(py), ".py files")
        data = blobs.get(oid)
        if data is None:
            unreadable.append(path)
            continue
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as e:
            py_files[track]["raw"]["total"] += 1
            py_files[track]["raw"]["failed"] += 1
            failures.append({"track": track, "kind": "knobs", "file": path, "error": f"{path}: not UTF-8 text (byte {e.start})"})
            continue
        count_file(py_files, track, source, path, path)

    result = {
        "repo": str(args.repo),
        "commit": blobs.commit(args.rev),
        "logs": logs,
        "log_files": log_files,
        "py_files": py_files,
        "no_code": no_code,
        "unreadable": unreadable,
        "failures": failures,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        report(result)
    return 0


def counter(*names: str) -> dict[str, int]:
    return dict.fromkeys(names, 0)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def code_section(text: str) -> str | None:
    """The part of a log split_log reads (above the first rule, or between the first two): the dedupe key."""
    rules = [m.start() for m in RULE.finditer(text)]
    if not rules:
        return None
    if rules[0] > 0:
        return text[: rules[0]]
    return text[: rules[1]] if len(rules) > 1 else text


def ls_tree(repo: Path, rev: str) -> list[tuple[str, str]]:
    """(path, blob id) of every file of the commit."""
    out = git(repo, "ls-tree", "-r", "-z", rev).stdout
    rows = []
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        _mode, kind, oid = meta.split()
        if kind == b"blob":
            rows.append((path.decode("utf-8", "surrogateescape"), oid.decode()))
    return rows


def git(repo: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, **kw)
    except subprocess.CalledProcessError as e:
        sys.exit(f"error: git {' '.join(args)} in {repo}: {e.stderr.decode(errors='replace').strip()}")


class Blobs:
    """Blob contents through one `git cat-file --batch`; None for one the copy lacks (a partial mirror)."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def get(self, oid: str) -> bytes | None:
        self.proc.stdin.write(oid.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) < 3:  # "<oid> missing"
            return None
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)  # the newline after each object
        return data

    def commit(self, rev: str) -> str:
        return git(self.repo, "rev-parse", rev).stdout.decode().strip()


def progress(done: int, total: int, what: str) -> None:
    """A line on stderr every 250 items and at the end (whole lines: readable when captured too)."""
    if done % 250 == 0 or done == total:
        print(f"{what}: {done}/{total}", file=sys.stderr, flush=True)


def report(r: dict) -> None:
    print(f"modded-nanogpt {r['commit'][:12]} ({r['repo']})\n")
    table("Logs with code (a line of 100 '='): extracted by split_log", r["logs"], ("total", "extracted", "failed"), "logs")
    table("Files from the extracted logs: listed by list_knobs", r["log_files"], ("total", "knobs_ok", "failed"), "files")
    table("Published .py files (records/, and the repository's top level as HEAD): listed by list_knobs", r["py_files"],
          ("total", "knobs_ok", "failed"), "files")  # fmt: skip
    if r["no_code"]:
        print("Files under records/ without a line of 100 '=' (not logs of code): "
              + ", ".join(f"{t} {n}" for t, n in sorted(r["no_code"].items())))  # fmt: skip
    if r["unreadable"]:
        print(f"Missing from this copy (not read): {len(r['unreadable'])}: " + ", ".join(r["unreadable"]))
    print(f"\nFailures ({len(r['failures'])}, once per unique code):")
    for f in r["failures"]:
        same = f" [{f['same_code_logs']} logs with this code]" if f.get("same_code_logs", 0) > 1 else ""
        print(f"  {f['kind']:7} {f['error']}{same}")


def table(title: str, counts: dict, columns: tuple[str, ...], unit: str) -> None:
    print(title)
    rows = [["track", unit, *columns[1:], "|", "unique", *columns[1:]]]
    totals = {kind: counter(*columns) for kind in ("raw", "unique")}
    for track in sorted(counts, key=lambda t: (t == TOP, t)):
        c = counts[track]
        rows.append([track, *(str(c["raw"][k]) for k in columns), "|", *(str(c["unique"][k]) for k in columns)])
        for kind, total in totals.items():
            for k in columns:
                total[k] += c[kind][k]
    rows.append(["all", *(str(totals["raw"][k]) for k in columns), "|", *(str(totals["unique"][k]) for k in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    print()


if __name__ == "__main__":
    sys.exit(main())
