"""Does `trainer/script/logparse.py` read the final val loss of every log modded-nanogpt published?

Reads every run log (`.txt`, `.log`, `.out`, `.stdout`) under records/track_1_short,
track_2_medium and track_3_optimization of a modded-nanogpt checkout or bare git dir (through
`git show`, so a mirror needs no work tree). For each log, a deliberately simple check, a loose
regex over the raw text and nothing of the parser's, finds the last `step:M/M val_loss:X` line;
then `parse_step` reads the log line by line and its last val line with step == total must
give the same X. Logs that stop before M (runs that claim an earlier step) are counted apart,
their last `step:N/M val_loss:` line checked the same way. Per track: files, logs (files with a
`step:N/M` line), logs with a final line, those the parser reads right; then every mismatch (path
and both values), every file without a step line (metadata, requirements, stderr, llm.c's
`s:N tel:X` logs) and every file git could not give.

Example:
  python bench/published_logs.py --repo /work/.mirror/KellerJordan+modded-nanogpt/repo
  python bench/published_logs.py --repo ~/modded-nanogpt --json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trainer.script.logparse import parse_step  # noqa: E402

TRACKS = ("track_1_short", "track_2_medium", "track_3_optimization")
SUFFIXES = (".txt", ".log", ".out", ".stdout")
# The independent check: no prefix, unit or field handling, just the text after `val_loss:`.
LOOSE_VAL = re.compile(r"step:(\d+)/(\d+) val_loss:(\S+)")


def published_logs(repo: Path) -> Iterator[tuple[str, str | None, str]]:
    """(path in the repo, text or None, why not) for every log file of the three tracks."""
    if (repo / "records").is_dir():  # a checkout
        for track in TRACKS:
            for path in sorted((repo / "records" / track).rglob("*")):
                if path.is_file() and path.suffix in SUFFIXES:
                    yield str(path.relative_to(repo)), path.read_text(errors="replace"), ""
        return
    listed = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", "--name-only", "HEAD", "--",
                             *(f"records/{t}" for t in TRACKS)], capture_output=True, text=True, check=True)
    for name in sorted(n for n in listed.stdout.split("\0") if n.endswith(SUFFIXES)):
        shown = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True)
        if shown.returncode:  # a mirror may list a large blob it does not hold
            yield name, None, shown.stderr.decode(errors="replace").strip()
        else:
            yield name, shown.stdout.decode(errors="replace"), ""


def loose_last_val(text: str) -> tuple[bool, str] | None:
    """(whether it is a final step:M/M line, its loss text) of the log's last val line, or None."""
    hits = LOOSE_VAL.findall(text)
    finals = [loss for step, total, loss in hits if step == total]
    if finals:
        return True, finals[-1]
    return (False, hits[-1][2]) if hits else None


def parsed_last_val(text: str, final: bool) -> float | None:
    """The parser's val loss of the log's last final (or, when not `final`, last of any) val line."""
    last = None
    for line in text.splitlines():
        step = parse_step(line)
        if step is not None and step.val_loss is not None and (step.step == step.total or not final):
            last = step.val_loss
    return last


def same(loss_text: str, parsed: float | None) -> bool:
    """Whether the parser's loss is the number the check found (nan included)."""
    try:
        expected = float(loss_text)
    except ValueError:
        return False
    return parsed is not None and (parsed == expected or (math.isnan(parsed) and math.isnan(expected)))


def audit(repo: Path) -> dict:
    """Counts by track, and the mismatches, files without a step line and unreadable files."""
    counts = {t: dict(files=0, logs=0, final=0, final_read=0, early=0, early_read=0, unreadable=0) for t in TRACKS}
    mismatches, no_step, unreadable = [], [], []
    for i, (path, text, why) in enumerate(published_logs(repo), 1):
        c = counts[path.split("/")[1]]
        c["files"] += 1
        if i % 200 == 0:
            print(f"  {i} files read ({path})", file=sys.stderr, flush=True)
        if text is None:
            c["unreadable"] += 1
            unreadable.append({"path": path, "why": why})
            continue
        if not re.search(r"step:\d+/\d+", text):
            no_step.append({"path": path, "first_line": text.lstrip().split("\n", 1)[0][:60]})
            continue
        c["logs"] += 1
        if (found := loose_last_val(text)) is None:
            continue
        final, loss = found
        parsed = parsed_last_val(text, final)
        kind = "final" if final else "early"
        c[kind] += 1
        if same(loss, parsed):
            c[f"{kind}_read"] += 1
        else:
            mismatches.append({"path": path, "line": kind, "check": loss, "parse_step": parsed})
    return {"counts": counts, "mismatches": mismatches, "no_step_line": no_step, "unreadable": unreadable}


def print_report(result: dict) -> None:
    columns = ("files", "logs", "final", "final_read", "early", "early_read", "unreadable")
    print(f"{'track':22}" + "".join(f"{c:>12}" for c in columns))
    for track, c in result["counts"].items():
        print(f"{track:22}" + "".join(f"{c[k]:>12}" for k in columns))
    print("\nlogs: files with a `step:N/M` line; final: with a `step:M/M val_loss:` line (the loose check);")
    print("final_read: parse_step reads the same loss; early: no M/M line, the last `step:N/M val_loss:` compared")
    for title, key, show in (("mismatches", "mismatches", lambda m: f"{m['line']}: check {m['check']} "
                                                                    f"parse_step {m['parse_step']}"),
                             ("files without a step line", "no_step_line", lambda m: repr(m["first_line"])),
                             ("unreadable", "unreadable", lambda m: m["why"])):
        print(f"\n{title}: {len(result[key])}")
        for m in result[key]:
            print(f"  {m['path']}  {show(m)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, required=True, help="modded-nanogpt checkout or bare git dir")
    p.add_argument("--json", action="store_true", help="print the counts (and the lists) as JSON")
    args = p.parse_args()
    result = audit(args.repo)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
