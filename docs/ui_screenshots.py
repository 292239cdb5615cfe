"""Regenerate the screenshots in docs/ui.md from a real sweep, so the page shows what this
version of the project and of MLflow actually put in the UI.

It runs a small CPU sweep with the project's own CLI (search_spaces/smoke.yaml, validated every
2 steps instead of 6 so the val_loss curves have 7 points), serves it with `speedrun ui`, and
photographs the MLflow UI with headless Chromium.

Chromium is driven over its DevTools protocol rather than with `chromium --screenshot URL`,
because a plain screenshot cannot set the UI's browser-side state: MLflow 3.17 opens its
Assistant panel over a third of the page on first load, shows the GenAI layout, keeps nested
runs collapsed and has no URL for any of that; all of it lives in the page's localStorage.
The views themselves are reached through the UI's own hash routes (#/experiments/ID/runs, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp  # a dependency of mlflow
import yaml
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]
SWEEP = "ui-demo"
WIDTH = 1600  # each view's height is chosen to end below its content
MAX_PNG_BYTES = 300_000


def say(msg: str) -> None:
    print(f"[ui_screenshots] {msg}", flush=True)


# --- the sweep -------------------------------------------------------------------------------

def smoke_space() -> dict:
    return yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())


def write_space(workdir: Path) -> Path:
    """smoke.yaml with validation every 2 steps: the same 12-step trials, smoother curves."""
    space = smoke_space()
    space["name"] = SWEEP
    space["base"].setdefault("set", {})["eval.every"] = 2
    path = workdir / f"{SWEEP}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def run_sweep(workdir: Path, tracking_uri: str) -> None:
    if MlflowClient(tracking_uri).get_experiment_by_name(SWEEP) is not None:
        say(f"sweep {SWEEP!r} already in {workdir}/mlflow.db: reusing it")
        return
    space = write_space(workdir)
    say(f"running the sweep in {workdir} (about 2 minutes on a 2-core CPU)")
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "sweep", str(space), "--name", SWEEP],
                   cwd=workdir, check=True)


def find_runs(tracking_uri: str) -> tuple[str, str, dict[str, str], str]:
    """(experiment id, sweep run id, {trial run name: run id} sorted by name, best trial's run id)."""
    client = MlflowClient(tracking_uri)
    exp_id = client.get_experiment_by_name(SWEEP).experiment_id
    parent = client.search_runs([exp_id], "tags.`speedrun.role` = 'sweep'")[0]
    trials = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                order_by=["attributes.run_name ASC"])
    by_name = {r.info.run_name: r.info.run_id for r in trials}
    best = parent.data.tags.get("best_run_id") or trials[0].info.run_id
    return exp_id, parent.info.run_id, by_name, best


# --- the server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(workdir: Path, port: int) -> subprocess.Popen:
    log = workdir / "ui.log"
    say(f"starting `speedrun ui --port {port}` in {workdir} (its log: {log})")
    # Its own session, so stopping it can never signal this script's terminal group; its log
    # (a line per request) goes to a file so the progress lines here stay readable.
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port)],
                                cwd=workdir, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"speedrun ui exited with code {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    say("server is up")
                    return proc
        except OSError:
            pass
        time.sleep(1)
    stop(proc)
    raise SystemExit("speedrun ui did not answer within 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # `speedrun ui` passes SIGTERM on to the mlflow server it started
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- the browser -----------------------------------------------------------------------------

class Browser:
    """Headless Chromium on one tab, spoken to over the DevTools protocol (JSON over a websocket)."""

    def __init__(self, chromium: str, profile: Path):
        args = [chromium, "--headless=new", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port_file = profile / "DevToolsActivePort"  # where Chromium says which port it chose
        self.next_id = 0

    async def __aenter__(self) -> Browser:
        deadline = time.monotonic() + 30
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise SystemExit("chromium did not start its DevTools server")
            await asyncio.sleep(0.2)
        port = self.port_file.read_text().split()[0]
        self.http = aiohttp.ClientSession()
        async with self.http.get(f"http://127.0.0.1:{port}/json/list") as r:
            tab = next(t for t in await r.json() if t["type"] == "page")
        self.ws = await self.http.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")  # needed for scripts registered before each page load
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        self.proc.wait()

    async def send(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        async for msg in self.ws:
            reply = json.loads(msg.data)
            if reply.get("id") == self.next_id:  # everything else is an event we did not ask for
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise RuntimeError("chromium closed the connection")

    async def js(self, expression: str):
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    async def open(self, url: str, ready: str, height: int, timeout: float = 60) -> None:
        """Load `url` as a fresh page in a WIDTH x height viewport, then wait until the JS
        expression `ready` is true: a screenshot of a spinner or of half a table would be worse
        than none."""
        await self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height,
                        deviceScaleFactor=1, mobile=False)
        await self.send("Page.navigate", url="about:blank")  # a hash change alone would not reload
        await self.send("Page.navigate", url=url)
        await self.wait(ready, timeout, url)

    async def wait(self, ready: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not await self.js(f"Boolean({ready})"):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {ready} on {what}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # let charts finish drawing and layout settle

    async def shot(self, path: Path) -> None:
        data = base64.b64decode((await self.send("Page.captureScreenshot", format="png"))["data"])
        path.write_bytes(data)
        note = "" if len(data) <= MAX_PNG_BYTES else f"  (over {MAX_PNG_BYTES // 1000} KB)"
        say(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}, {len(data) // 1000} KB{note}")


def text_has(*words: str) -> str:
    """A JS expression: the page's visible text contains every word."""
    return " && ".join(f"document.body.innerText.includes({json.dumps(w)})" for w in words)


def preset_storage(exp_id: str, parent_id: str, columns: list[str]) -> str:
    """JS run before each page load: the browser-side settings a user would have clicked.
    Keys and shapes are those MLflow 3.17's UI writes itself; set only where absent, so that
    state the page saves later is kept."""
    runs_view = {"runsExpanded": {parent_id: True}, "selectedColumns": columns}
    items = {
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",  # don't pop the Assistant open
        "mlflow.assistant.panelOpen_v1": "false",
        "mlflow.workflowType_v1": json.dumps("machine_learning"),  # the "Model training" layout
        f'MLflowLocalStorage-1.1-ExperimentPage-["{exp_id}"]-ReactComponentState': json.dumps(runs_view),
    }
    return "".join(f"if (localStorage.getItem({json.dumps(k)}) === null) "
                   f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});\n" for k, v in items.items())


async def take_screenshots(base: str, chromium: str, out: Path, tracking_uri: str) -> None:
    exp_id, parent_id, trials, best = find_runs(tracking_uri)
    say(f"experiment {exp_id}, sweep run {parent_id}, {len(trials)} trial runs, best {best}")
    columns = ["tags.`status`", "tags.`optuna_trial`", "metrics.`final_val_loss`",
               *(f"params.`{p}`" for p in smoke_space()["params"])]
    trial_names = list(trials)
    runs_arg = f"runs={json.dumps(list(trials.values()))}&experiments={json.dumps([exp_id])}"
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="ui-chromium-") as profile:
        async with Browser(chromium, Path(profile)) as b:
            await b.send("Page.addScriptToEvaluateOnNewDocument", source=preset_storage(exp_id, parent_id, columns))

            say("runs table: the sweep run with its trials expanded")
            await b.open(f"{base}#/experiments/{exp_id}/runs", text_has(SWEEP, *trial_names, "completed"), 520)
            await b.shot(out / "runs.png")

            say("chart view, filtered to val_loss")
            await b.open(f"{base}#/experiments/{exp_id}/runs?compareRunsMode=CHART", text_has("Model metrics", "val_loss"), 700)
            # Typed like a user would: React only notices real input events.
            await b.js('document.querySelector(\'input[placeholder="Search metric charts"]\').focus()')
            await b.send("Input.insertText", text="val_loss")
            await b.wait(f"!({text_has('train_time_ms')})", 30, "the chart search")
            await b.shot(out / "charts.png")

            say("compare page of the trials")
            await b.open(f"{base}#/compare-runs?{runs_arg}", text_has("Parallel Coordinates Plot", *trial_names), 1000)
            await b.shot(out / "compare.png")

            say("val_loss of every trial (compare page -> val_loss)")
            # The route the compare page's val_loss link opens (MLflow's getMetricPageRoute).
            await b.open(f'{base}#/metric?{runs_arg}&metric="val_loss"&plot_metric_keys=["val_loss"]'
                         "&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=true",
                         text_has("Completed Runs", *trial_names), 800)
            await b.shot(out / "metric.png")

            say("the best trial's run page")
            await b.open(f"{base}#/experiments/{exp_id}/runs/{best}", text_has("optuna_trial", "Parameters", "val_loss"), 1000)
            await b.shot(out / "trial.png")

            say("its config.yaml artifact")
            await b.open(f"{base}#/experiments/{exp_id}/runs/{best}/artifacts/config.yaml", text_has("vocab_size", "muon_lr"), 1000)
            await b.shot(out / "trial_artifacts.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python docs/ui_screenshots.py                    # sweep in a temp dir, PNGs to docs/img/\n"
               "  python docs/ui_screenshots.py --workdir /tmp/ui  # keep the sweep; a second run reuses it",
    )
    parser.add_argument("--workdir", type=Path, help="where to run the sweep (reused if it already holds it); default: a temporary directory, removed afterwards")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="folder for the PNGs (default: docs/img)")
    parser.add_argument("--port", type=int, help="port for the UI (default: a free one)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium",
                        help="Chromium binary (Debian: apt-get install chromium)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ui-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{workdir.resolve()}/mlflow.db"
    try:
        run_sweep(workdir, tracking_uri)
        port = args.port or free_port()
        server = start_ui(workdir, port)
        try:
            asyncio.run(take_screenshots(f"http://127.0.0.1:{port}/", args.chromium, args.out.resolve(), tracking_uri))
        finally:
            say("stopping the server")
            stop(server)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    say("done")


if __name__ == "__main__":
    main()
