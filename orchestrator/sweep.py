"""The sweep driver: validate the space, then Ray Tune's Tuner with Optuna proposing trials.

    space  = prepare_space("smoke")                    # SpaceError before anything starts
    result = run_sweep(space, SweepOptions(name="smoke"))

Where things go (relative to `workdir`, the directory the sweep runs in):
  mlflow.db / optuna.db            MLflow runs and the Optuna study (defaults; any MLflow
                                   tracking URI or SQLAlchemy URL works)
  sweeps/<name>/trials/trial_NNNN  each trial's events.jsonl, trainer.log, overrides.txt
  sweeps/<name>/tune, tune-2, ...  Ray Tune's experiment directory, one per driver (resumes add one)
  sweeps/<name>/best.yaml          the best trial's full trainer config (a script sweep:
                                   best/, the script with the best trial's knobs and the modules
                                   it imports; a horizon sweep: the best config of its highest
                                   rung, at full length)
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from orchestrator.driver_lock import driver_lock
from orchestrator.errors import first_line
from orchestrator.interrupts import sigterm_as_ctrl_c
from orchestrator.launch import DEFAULT_COMPILE_CACHE
from orchestrator.outcome import INTERRUPTED, OBJECTIVE, PROGRESS, VAL_LOSS
from orchestrator.private_api import single_node_ray
from orchestrator.records import TrialRecord, best_record
from orchestrator.stores import DEFAULT_STORAGE, DEFAULT_TRACKING_URI, absolute, shown
from orchestrator.targets import check_overrides, horizon_overrides, resolve, write_script_folder
from search_spaces import AblationSpace, BaseSpec, Budget, Resources, SweepSpace, load_space
from search_spaces.names import name_problem
from trainer.config import load_config
from trainer.errors import InputError

MAX_TRIAL_RETRIES = 1  # Tune re-runs a trial whose trainable raised (a lost worker), this many times


class SweepSetupError(InputError):
    """A sweep that cannot start (name taken, resources the cluster lacks); nothing was run."""


@dataclass
class SweepOptions:
    name: str | None = None  # default: the space's name
    trials: int | None = None  # default: budget.trials
    address: str | None = None  # Ray cluster address; default: a local Ray
    gpus_per_trial: int | None = None  # default: resources.gpus
    tracking_uri: str = DEFAULT_TRACKING_URI
    storage: str = DEFAULT_STORAGE
    workdir: Path = field(default_factory=Path.cwd)
    resume: bool = False  # continue the sweep of this name (orchestrator/resume.py)
    fresh_processes: bool = False  # a new trainer process per trial instead of a warm worker per slot
    compile_cache: str = DEFAULT_COMPILE_CACHE  # root of the per-node inductor/Triton caches

    def __post_init__(self) -> None:
        self.tracking_uri = absolute(self.tracking_uri, self.workdir)
        self.storage = absolute(self.storage, self.workdir)


@dataclass
class SweepResult:
    name: str
    records: list[TrialRecord]
    best: TrialRecord | None
    best_config: Path | None
    sweep_dir: Path
    experiment_id: str
    parent_run_id: str
    complete: bool  # every requested trial finished (not interrupted)
    store_error: str = ""  # the sweep ran, but its end could not be recorded (the results in the other store stand)

    @property
    def exit_code(self) -> int:
        """0: at least one trial completed; 1: none did, or the end could not be recorded;
        130: interrupted (Ctrl-C, SIGTERM)."""
        if self.store_error:
            return 1
        if not self.complete:
            return 130
        return 0 if self.best is not None else 1


def prepare_space(spec: str | Path, trials: int | None = None, gpus_per_trial: int | None = None) -> SweepSpace:
    """Load and validate the space (raises SpaceError), with the command line's overrides."""
    space = load_space(str(spec), check_overrides=check_overrides).with_horizon(horizon_overrides)
    update: dict[str, Any] = {}
    if trials is not None:
        if trials < 1:
            raise SweepSetupError(f"--trials {trials}: expected at least 1")
        if space.scheduler.name == "horizon" and trials < space.scheduler.full_length_configs():
            raise SweepSetupError(f"--trials {trials}: with scheduler: horizon one config in "
                                  f"{space.scheduler.full_length_configs()} reaches the full length; expected at least that many")
        update["budget"] = Budget(trials=trials, steps=space.budget.steps, time_s=space.budget.time_s)
    if gpus_per_trial is not None:
        if gpus_per_trial < 0:
            raise SweepSetupError(f"--gpus-per-trial {gpus_per_trial}: expected 0 or more")
        # constraints read world_size = max(gpus, 1) from here, so they see the real rank count
        update["resources"] = Resources(gpus=gpus_per_trial, cpus=space.resources.cpus)
    return space.model_copy(update=update) if update else space


def sweep_name(space: SweepSpace, name: str | None) -> str:
    name = name or space.name
    problem = name_problem(name)
    if problem:
        raise SweepSetupError(f"sweep name: {problem} (it names a folder, the Optuna study and the MLflow experiment)")
    return name


def check_address(address: str | None) -> None:
    """Refuse Ray Client addresses: through one, Tune runs its driver loop (and with it the MLflow
    callback and the trial records) in an actor inside the cluster, away from this process."""
    if address and address.startswith("ray://"):
        raise SweepSetupError(
            f"--address {address}: Ray Client (ray://) is not supported; run the sweep on a node of the cluster "
            "with --address auto (or HEAD_IP:6379, the head's GCS port)"
        )


def in_stores(name: str, options: SweepOptions) -> tuple[bool, bool]:
    """Whether the stores hold a sweep NAME: (an Optuna study, an MLflow experiment)."""
    from orchestrator.tracking import experiment_exists

    try:
        study = name in optuna.study.get_all_study_names(storage=options.storage)
    except Exception as exc:  # noqa: BLE001 - a bad URL, an unreachable server
        raise SweepSetupError(f"--storage {shown(options.storage)}: cannot open the Optuna storage: {first_line(exc)}") from None
    try:
        experiment = experiment_exists(options.tracking_uri, name)
    except Exception as exc:  # noqa: BLE001
        raise SweepSetupError(f"--tracking-uri {shown(options.tracking_uri)}: cannot open the MLflow store: {first_line(exc)}") from None
    return study, experiment


def check_new(name: str, options: SweepOptions) -> None:
    """Refuse to mix a new sweep into an existing study or experiment of the same name."""
    study, experiment = in_stores(name, options)
    where = []
    if study:
        where.append(f"an Optuna study in {shown(options.storage)}")
    if experiment:
        where.append(f"an MLflow experiment in {shown(options.tracking_uri)}")
    if where:
        raise SweepSetupError(
            f"a sweep named '{name}' already exists ({' and '.join(where)}); "
            "choose another with --name, or continue it with --resume"
        )


def check_resumable(name: str, options: SweepOptions) -> None:
    """A sweep to resume must have its Optuna study: it says which trials ran. A lost MLflow
    experiment is made again from it."""
    study, _ = in_stores(name, options)
    if not study:
        raise SweepSetupError(
            f"--resume: no Optuna study '{name}' in {shown(options.storage)}; run it from the directory (or with "
            "the --storage and --tracking-uri) the sweep used, or start it without --resume"
        )


def concurrency(nodes: list[dict[str, float]], cpus: float, gpus: int, trials: int) -> int:
    """How many trials fit at once on the nodes' CPUs and GPUs (at least one must). A trial's
    resources are one STRICT_PACK bundle, so each trial must fit whole on one node: two 4-GPU
    nodes run no 8-GPU trial."""
    def fitting(node: dict[str, float]) -> int:
        by_cpu = math.floor(node.get("CPU", 0.0) / cpus + 1e-9)
        by_gpu = math.floor(node.get("GPU", 0.0) / gpus + 1e-9) if gpus else trials
        return min(by_cpu, by_gpu)

    fit = sum(fitting(node) for node in nodes)
    if fit < 1:
        shapes = Counter((node.get("CPU", 0.0), node.get("GPU", 0.0)) for node in nodes)
        have = ", ".join(f"{n} with {c:g} CPU(s) and {g:g} GPU(s)" for (c, g), n in shapes.most_common())
        raise SweepSetupError(
            f"each trial needs {cpus:g} CPU(s) and {gpus} GPU(s) on one node (resources in the space, "
            f"--gpus-per-trial); no node of the Ray cluster has them (its nodes: {have or 'none'})"
        )
    return max(1, min(fit, trials))


def resolve_config(base: BaseSpec, overrides: list[str]) -> tuple[dict[str, Any], str] | None:
    """A trial's full config (dict, text), or None when its overrides do not apply."""
    try:
        return resolve(base.config, overrides, base.python, base.env)
    except InputError:
        return None


def write_best(space: SweepSpace, best: TrialRecord, sweep_dir: Path) -> Path:
    """The best trial's full trainer config (best.yaml), or for a script the patched script in a
    folder with the modules it imports (best/)."""
    if space.base.is_script:
        path = write_script_folder(space.base.config, best.overrides, sweep_dir / "best")[0]
    else:
        path = sweep_dir / "best.yaml"
        # a horizon sweep's best may come from a rung short of the full run: best.yaml is its config at full length
        overrides = best.overrides if best.rung is None else space.overrides(best.params)
        path.write_text(load_config(space.base.config, overrides).to_yaml())
    return path


def _add_filter(logger: str, fn) -> None:
    if fn not in logging.getLogger(logger).filters:
        logging.getLogger(logger).addFilter(fn)


def _no_token_notice(record: logging.LogRecord) -> bool:
    """Ray 2.60 turns token authentication on for new local clusters and says so on every start."""
    return not record.getMessage().startswith("Token authentication is enabled")


def _no_restore_hint(record: logging.LogRecord) -> bool:
    """Tune suggests `Tuner.restore(...)` after Ctrl-C; this driver's state lives in Optuna and
    MLflow instead, and Tune's restore does not bring the searcher back reliably."""
    return "Tuner.restore" not in record.getMessage()


def queue(name: str, storage: str, planned: list[dict[str, Any]]) -> None:
    """Enqueue the planned proposals (an ablation's runs) the study does not hold yet, in order:
    all of them for a new sweep; on resume, those a larger `--seeds` added."""
    if planned:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
        # a queued trial not yet asked for holds its params as `fixed_params` until it runs
        held = [t.params or t.system_attrs.get("fixed_params") for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get("status") != INTERRUPTED]
        for params in planned:
            if params not in held:
                study.enqueue_trial(params, skip_if_exists=False)


def tune_run_name(sweep_dir: Path) -> str:
    """`tune` for the first driver of a sweep, `tune-2`, `tune-3`... for the ones resuming it."""
    k = 1
    while (sweep_dir / (f"tune-{k}" if k > 1 else "tune")).exists():
        k += 1
    return f"tune-{k}" if k > 1 else "tune"


LOCALHOST = "127.0.0.1"  # what a local Ray listens on


def init_ray(address: str | None) -> bool:
    """Connect to Ray at `address`, or start a local Ray on loopback, quietly; returns whether
    this call started the connection."""
    import ray

    if ray.is_initialized():
        return False
    _add_filter("ray._private.authentication.authentication_token_setup", _no_token_notice)
    options: dict[str, Any] = dict(
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,  # trainer output goes to each trial's trainer.log
        configure_logging=True,
    )
    if address:
        ray.init(address=address, **options)
    else:
        _start_local_ray(options)
    return True


def _start_local_ray(options: dict[str, Any]) -> None:
    """A new Ray of our own whose processes (GCS, raylet, workers, this driver) listen on
    127.0.0.1 only, not on every interface (private_api.single_node_ray says how)."""
    import ray

    with single_node_ray():
        # "local": a new Ray even where `ray start` left a cluster running on this machine,
        # which ray.init() would otherwise join; --address auto joins that one
        ray.init(address="local", _node_ip_address=LOCALHOST, **options)


def run_sweep(space: SweepSpace | AblationSpace, options: SweepOptions, console=None) -> SweepResult:
    """Run the whole sweep (or ablation: a sweep of queued runs); trials that fail, diverge or are
    rejected are recorded, not raised. One driver at a time per sweep name (SweepBusy otherwise)."""
    from orchestrator.resume import check_same_space

    name = sweep_name(space, options.name)
    check_address(options.address)
    with driver_lock(options.storage, name):
        (check_resumable if options.resume else check_new)(name, options)
        if options.resume:
            check_same_space(optuna.load_study(study_name=name, storage=options.storage), space)
        return _drive(space, options, name, console)


def _drive(space: SweepSpace | AblationSpace, options: SweepOptions, name: str, console) -> SweepResult:
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # JSON and CSV are added below
    # Tune's newer console reporter prints its banner even at verbose=0; the legacy one is silent
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from orchestrator.callback import SweepCallback
    from orchestrator.horizon import HorizonSearch, expected_runs, halving_space, max_runs, sampler_caveat
    from orchestrator.progress import SweepConsole, leaderboard_text
    from orchestrator.resume import Carryover, reconcile, record_space, requeue_interrupted
    from orchestrator.search import SweepSearch
    from orchestrator.trial import TrainerTrial

    _add_filter("ray.tune.tune", _no_restore_hint)
    # Tune saves its experiment state for Tuner.restore, which this driver never uses (the stores are
    # the state, orchestrator/resume.py); on a full disk it logs a traceback at every save
    logging.getLogger("ray.tune.execution.experiment_state").setLevel(logging.CRITICAL)
    workdir = Path(options.workdir).resolve()
    sweep_dir = workdir / "sweeps" / name
    trials_dir = sweep_dir / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    started_ray = init_ray(options.address)
    sigterm = sigterm_as_ctrl_c()
    tracker = None
    try:
        res, budget, metric = space.resources, space.budget, space.objective.metric
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        parallel = concurrency(nodes, res.cpus, res.gpus, budget.trials)
        resolve = lambda ov: resolve_config(space.base, ov)  # noqa: E731
        carry = Carryover()
        tracker, recreated = _open_tracker(space, options, name, parallel)
        if options.resume:
            study = optuna.load_study(study_name=name, storage=options.storage)
            carry = reconcile(study, tracker, space.overrides, resolve)
            if space.sampler.seed is not None:
                # a seeded sampler started afresh would propose the first driver's trials again
                reseeded = space.sampler.model_copy(update={"seed": space.sampler.seed + len(study.trials)})
                space = space.model_copy(update={"sampler": reseeded})
        else:
            _store_step(options.storage, "Optuna", lambda: record_space(
                optuna.create_study(study_name=name, storage=options.storage, load_if_exists=True), space))
        queue(name, options.storage, space.planned_trials())
        horizon = space.scheduler.name == "horizon"
        # a horizon sweep's promotions come on top of budget.trials configs; its searcher says when it is done
        runs = max_runs(space.scheduler, budget.trials) if horizon else budget.trials
        remaining = max(runs - len(carry.finished), 0)
        runs_expected = expected_runs(space.scheduler, budget.trials) if horizon else budget.trials
        view = SweepConsole(runs_expected, parallel, metric, console, earlier=carry.finished)
        if options.resume:
            view.print(
                f"resuming sweep [bold]{name}[/]: {len(carry.finished)} of {budget.trials} trials finished, "
                f"{len(carry.requeued)} interrupted trial(s) queued again"
                + (f" ({', '.join(f'#{n}' for n in carry.requeued)})" if carry.requeued else "")
                + (f", {carry.repaired} MLflow run(s) repaired from Optuna" if carry.repaired else "")
            )
            if recreated:
                view.print(f"[yellow]warning:[/] the MLflow experiment '{name}' was missing from {shown(options.tracking_uri)}; "
                           "it was made again from the Optuna study")
        view.print(
            f"{space.kind} [bold]{name}[/]: {'up to ' if horizon else ''}{remaining} trials of {space.base.config} to run, {parallel} at a time "
            f"({res.cpus:g} CPU, {res.gpus} GPU each), minimising {metric}; "
            f"MLflow {shown(options.tracking_uri)}, Optuna {shown(options.storage)}"
        )
        search = dict(space=space.define_by_run, metric=OBJECTIVE, mode="min", sampler=space.make_sampler(),
                      storage=optuna.storages.RDBStorage(options.storage), study_name=name)
        if horizon:
            view.print(f"horizon halving: configs run at {', '.join(f'{f:g}' for f in space.scheduler.rungs)} of the "
                       f"full length; the best 1/{space.scheduler.reduction_factor:g} of each rung go on to the next"
                       + (" once all of the rung has run" if space.scheduler.promotion == "sync" else ""))
            if space.scheduler.detrend:
                view.print(f"each shorter rung ranks its runs by loss less its linear trend in {', '.join(space.scheduler.detrend)}")
            if space.scheduler.audit:
                view.print(f"audit: {space.scheduler.audit} config(s) the lowest rung drops run at full length too, "
                           "spread over its ranking, to check it")
            if (r := space.scheduler.retune) is not None:
                view.print(f"then a full-length retune of {', '.join(r.params)}: the best run again with each moved by "
                           f"x{r.factor:g} or /{r.factor:g} while that improves, up to {r.runs} run(s) each"
                           + (f"; held at {', '.join(f'{k} = {v:g}' for k, v in r.hold.items())} until then" if r.hold else ""))
            if caveat := sampler_caveat(space.sampler.name, space.scheduler):
                view.print(f"[yellow]warning:[/] {caveat}")
            searcher = HorizonSearch(**{**search, "space": halving_space(space)}, scheduler=space.scheduler,
                                     configs=budget.trials, ranges=space.distributions())
        else:
            searcher = SweepSearch(**search)
        scheduler = None
        if space.scheduler.name == "asha":
            s = space.scheduler
            if s.max_t < 1.0:
                view.print(f"[yellow]warning:[/] scheduler.max_t = {s.max_t:g}: ASHA stops every trial at that fraction "
                           "of its schedule, so none completes; use max_t: 1.0 to let the best run to the end")
            scheduler = ASHAScheduler(
                time_attr=PROGRESS, metric=VAL_LOSS, mode="min",
                max_t=s.max_t, grace_period=s.grace, reduction_factor=s.reduction_factor,
            )
        callback = SweepCallback(overrides_of=space.overrides, resolve=resolve, tracker=tracker, view=view)
        trainable = tune.with_resources(
            tune.with_parameters(TrainerTrial, space=space, workdir=str(workdir), trials_dir=str(trials_dir),
                                 warm=not options.fresh_processes, compile_cache=options.compile_cache),
            tune.PlacementGroupFactory([{"CPU": res.cpus, "GPU": res.gpus}], strategy="STRICT_PACK"),
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=parallel),
                # a finished trial's actor (and its warm trainer worker) takes the slot's next trial
                scheduler=scheduler, num_samples=remaining, reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=tune_run_name(sweep_dir), storage_path=str(sweep_dir), verbose=0,
                callbacks=[callback, JsonLoggerCallback(), CSVLoggerCallback()],  # not TensorBoard
                failure_config=tune.FailureConfig(max_failures=MAX_TRIAL_RETRIES),
                # a trial is a subprocess with its own checkpoints (runtime.checkpoint_every);
                # Tune's default for class trainables would call save() at the end of each trial
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
            ),
        )
        try:
            if remaining:
                tuner.fit()  # returns early, after stopping the running trials, on Ctrl-C or SIGTERM
        except KeyboardInterrupt:  # a second one: Tune stops waiting for its trials (ray.shutdown ends them)
            pass

        interrupted = callback.close_unfinished()
        records = carry.finished + list(callback.records.values())
        records.sort(key=lambda r: (r.number is None, r.number or 0, r.tune_id))
        best = best_record(records)
        complete = not interrupted and len(records) >= budget.trials
        best_config, store_error = None, ""
        try:
            if stopped := [r.number for r in interrupted if r.number is not None]:
                _store_step(options.storage, "Optuna", lambda: requeue_interrupted(
                    optuna.load_study(study_name=name, storage=options.storage), stopped))
            if best is not None and space.kind == "sweep":  # an ablation's arms are compared, not ranked
                best_config = write_best(space, best, sweep_dir)
            _store_step(options.tracking_uri, "MLflow", lambda: tracker.finish(
                metric, best, records, leaderboard_text(records, metric), best_config, complete))
        except OSError as exc:
            store_error = f"{sweep_dir}: {exc.strerror or exc}"
        except InputError as exc:
            store_error = str(exc)
        if searcher.store_error:  # it stopped proposing trials
            store_error = f"--storage {shown(options.storage)}: the Optuna store could not be written ({searcher.store_error})"
        result = SweepResult(name, records, best, best_config, sweep_dir, tracker.experiment_id, tracker.parent_id,
                             complete, store_error)
        _closing(view, result, space, options)
        return result
    except BaseException as exc:
        if tracker is not None:
            tracker.fail(interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    finally:
        sigterm.restore()
        if started_ray:
            ray.shutdown()


def _store_step(uri: str, store: str, step):
    """Run `step`, a write to a store; a store that cannot be written (disk full, a deleted
    database, a server gone) becomes one SweepSetupError line, not the driver's traceback."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - sqlite, PostgreSQL and MLflow each raise their own
        flag = "--tracking-uri" if store == "MLflow" else "--storage"
        raise SweepSetupError(f"{flag} {shown(uri)}: the {store} store could not be written ({first_line(exc)})") from None


def _open_tracker(space: SweepSpace | AblationSpace, options: SweepOptions, name: str, parallel: int):
    """The sweep's MLflow experiment: reopened on resume, else created (also on a resume whose
    experiment was lost: the runs are made again from the Optuna study). Returns (tracker, recreated)."""
    from orchestrator.tracking import SweepTracker, experiment_exists

    uri = options.tracking_uri
    if options.resume and _store_step(uri, "MLflow", lambda: experiment_exists(uri, name)):
        return _store_step(uri, "MLflow", lambda: SweepTracker.reopen(uri, name)), False
    res, budget = space.resources, space.budget
    params = {
        "space": str(space.source) if space.source else "", "base_config": space.base.config,
        "base_set": space.base.set, "trials": budget.trials, "steps": budget.steps, "time_s": budget.time_s,
        "objective": space.objective.metric, "target": space.objective.target, "sampler": space.sampler.model_dump(),
        "scheduler": space.scheduler.model_dump(), "resources": res.model_dump(), "concurrency": parallel,
        "optuna_storage": shown(options.storage), "ray_address": options.address or "local",
        **({"arms": space.arms, "seeds": space.seeds} if space.kind == "ablation" else {}),
    }
    tracker = _store_step(uri, "MLflow", lambda: SweepTracker.create(
        uri, name, description=space.description, space_file=space.source, kind=space.kind, params=params))
    return tracker, options.resume


def _closing(view, result: SweepResult, space: SweepSpace, options: SweepOptions) -> None:
    view.summary(result.records)
    if not result.complete and not result.store_error:
        done = sum(r.status != "interrupted" for r in result.records)
        view.print(f"[yellow]interrupted[/]: {done} of {space.budget.trials} trials finished")
    metric = space.objective.metric
    if space.kind == "ablation":
        done = sum(r.status == "completed" for r in result.records)
        view.print(f"{done} of {len(result.records)} runs completed")
    elif result.best is None:
        view.print(f"[red]no trial completed[/] in sweep {result.name}; see the errors above and sweeps/{result.name}/trials/")
    else:
        b = result.best
        searched = [o for o in b.overrides if o not in space.base_overrides()]
        view.print(f"best: trial {b.label}, {metric} = {b.objective:.6g} (final val loss {b.final_val_loss:.4f})")
        if b.rung is not None and b.rung.fidelity < 1:
            view.print(f"[yellow]warning:[/] no config reached the full length; the best ran at horizon {b.rung.fidelity:g} "
                       "and its config is written at full length untried")
        view.print("  " + " ".join(f"--set {o}" for o in searched))
        run = f"torchrun --standalone --nproc_per_node=N {result.best_config}" if space.base.is_script \
            else f"python -m trainer --config {result.best_config}"
        view.print(f"  config: {result.best_config}  ({run})")
    view.print(f"MLflow: {shown(options.tracking_uri)}, experiment '{result.name}'; "
               f"Optuna: {shown(options.storage)}, study '{result.name}'")
    if result.store_error:
        view.print(f"[red]error:[/] {result.store_error}; free or restore it, then run the same command with --resume: "
                   "each store is repaired from the other")
