"""Running a job: each step with the library function of its command, skipping finished ones.

A step is skipped only when its outputs are complete (the stage that owns them says so) and
were made from the same options and inputs (its fingerprint, :mod:`geovision.jobs.fingerprint`).
Otherwise it runs: from the start, replacing its outputs, when something changed; or resuming
its own partial output when an earlier run of the same fingerprint stopped half-way. A step
that ran writes its outputs anew, so every later step that reads them runs again too.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geovision.atomic import write_text
from geovision.errors import GeovisionError
from geovision.jobs.fingerprint import (
    RESUME,
    SKIP,
    Decision,
    Fingerprint,
    StepState,
    decide,
    flatten,
    input_fingerprints,
    read_state,
    record_path,
    relative_values,
    shown_path,
)
from geovision.jobs.spec import KINDS, Job, Step, load_job, step_options, train_session
from geovision.options import to_json

log = logging.getLogger(__name__)


class StepFailedError(GeovisionError, RuntimeError):
    """A step of a job could not finish (a command step's non-zero exit, say)."""


@dataclass
class StepRecord:
    """What happened to one step, in the job report.

    Attributes:
        name: the step's name.
        kind: its kind.
        status: ``done``, ``skipped``, ``failed`` or ``pending``.
        action: ``run`` (from the start), ``resume`` or ``skip``.
        reason: why, in one phrase (``train.epochs changed 30 -> 5``).
        changes: every change since its outputs were made, one phrase each.
        seconds: how long it ran.
        outputs: what it writes.
        options: the options its outputs are made with (as in its fingerprint).
        error: the error, when it failed.
    """

    name: str
    kind: str
    status: str = "pending"
    action: str | None = None
    reason: str | None = None
    changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class JobReport:
    """The job report written as JSON beside the job (or where ``--report`` says)."""

    job: str
    file: str
    scheduler: str | None
    started: str
    log: str | None = None
    finished: str | None = None
    status: str = "running"
    seconds: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """Write atomically."""
        write_text(path, json.dumps(asdict(self), indent=2))


@dataclass(frozen=True)
class StepContext:
    """What a step's runner needs beside the step.

    Attributes:
        job: the job.
        scheduler: Dask scheduler of tile and infer steps, or None.
        workers: local threads, or None.
        quiet: no progress bars.
        fresh: start from scratch, replacing the outputs (False: resume them).
        log: the job log, where command steps write their output.
    """

    job: Job
    scheduler: str | None
    workers: int | None
    quiet: bool
    fresh: bool
    log: Path


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_job(
    path: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    report: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
) -> JobReport:
    """Run a job file's steps in order, skipping those whose outputs are up to date.

    A step is skipped when its outputs are complete and were made with the same options and
    inputs; it runs again (and so does every later step that reads its outputs) when an
    option or an input changed, and resumes when an earlier run of it stopped. Re-running a
    finished job with nothing changed does nothing.

    Args:
        path: the job file.
        scheduler: Dask scheduler for tile and infer steps (overrides the file's).
        workers: local threads (overrides the file's).
        report: where to write the JSON report (default ``<workdir>/<name>.report.json``).
        quiet: no progress bars.
        echo: where per-step progress lines go (they also go to ``<workdir>/<name>.log``).

    Returns:
        The report.

    Raises:
        GeovisionError: the job file is invalid (before any work), or a step failed (after
            the report records it).
    """
    job = load_job(path)
    sched = scheduler or job.scheduler
    n_workers = workers or job.workers
    out = Path(report) if report else job.workdir / f"{job.name}.report.json"
    job_log = job.workdir / f"{job.name}.log"
    rep = JobReport(job=job.name, file=str(job.path), scheduler=sched, started=_now(),
                    log=str(job_log))
    rep.steps = [StepRecord(name=s.name, kind=s.kind) for s in job.steps]
    t_job = time.perf_counter()
    job.workdir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    rep.write(out)

    def say(line: str) -> None:
        echo(line)
        with job_log.open("a") as f:
            f.write(f"{_now()} {line}\n")

    say(f"job {job.name}: {len(job.steps)} steps, workdir {job.workdir}")
    remade: dict[str, str] = {}  # output (as shown) -> the step of this run that wrote it
    for i, (step, rec) in enumerate(zip(job.steps, rep.steps, strict=True), start=1):
        head = f"[{i}/{len(job.steps)}] {step.name} ({step.kind})"
        rec.outputs = outputs_of(step)
        decision, state = plan(job, step, remade)
        rec.action, rec.reason, rec.changes = decision.action, decision.reason, list(
            decision.changes)
        rec.options = state.fingerprint.options
        if decision.action == SKIP:
            rec.status = "skipped"
            say(f"{head}: skipped: {decision.reason}")
            rep.write(out)
            continue
        say(f"{head}: {'resuming' if decision.action == RESUME else 'running'}: "
            f"{decision.reason}")
        context = StepContext(job=job, scheduler=sched, workers=n_workers, quiet=quiet,
                              fresh=decision.action != RESUME, log=job_log)
        t0 = time.perf_counter()
        try:
            run_step(step, state, context)
        except Exception as exc:
            rec.status, rec.seconds = "failed", time.perf_counter() - t0
            rec.error = str(exc) if isinstance(exc, GeovisionError) else (
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            rep.status, rep.finished = "failed", _now()
            rep.seconds = time.perf_counter() - t_job
            rep.write(out)
            say(f"{head}: failed after {rec.seconds:.1f} s (report: {out})")
            raise
        rec.status, rec.seconds = "done", time.perf_counter() - t0
        remade.update({shown_path(o, job.workdir): step.name for o in rec.outputs})
        say(f"{head}: done in {rec.seconds:.1f} s -> "
            f"{', '.join(shown_path(o, job.workdir) for o in rec.outputs) or 'no outputs'}")
        rep.write(out)
    rep.status, rep.finished = "done", _now()
    rep.seconds = time.perf_counter() - t_job
    rep.write(out)
    ran = sum(r.status == "done" for r in rep.steps)
    say(f"job {job.name}: {len(job.steps)} steps ({ran} ran, {len(job.steps) - ran} skipped) "
        f"in {rep.seconds:.1f} s; report {out}")
    return rep


def plan(job: Job, step: Step, remade: dict[str, str]) -> tuple[Decision, StepState]:
    """Whether ``step`` runs and why, and the record to write when it does.

    Args:
        job: the job.
        step: the step.
        remade: ``{output as shown: step name}`` of the steps of this run that ran.
    """
    now = fingerprint_of(step, job.workdir)
    path = record_path(job.workdir, job.name, step.name)
    stored = read_state(path)
    causes = {key: name for key in now.inputs for out, name in remade.items()
              if key == out or key.startswith(out.rstrip("/") + "/")}
    if step.kind == "command" and not step.options["outputs"]:
        decision = Decision("run", "declares no outputs, so it runs every time")
    else:
        decision = decide(stored, now, is_complete(step), causes=causes)
    outputs = [shown_path(o, job.workdir) for o in outputs_of(step)]
    return decision, StepState(path=path, fingerprint=now, outputs=outputs)


def run_step(step: Step, state: StepState, context: StepContext) -> None:
    """Run one step: record its fingerprint, run it, mark the record complete.

    This is where a step's outputs are taken: the claim of its output folders and the lock
    on them belong around the runner call.
    """
    state.write()
    RUNNERS[step.kind](step, context)
    state.complete()


# ---------------------------------------------------------------------------- fingerprints

def fingerprint_of(step: Step, workdir: Path) -> Fingerprint:
    """The step's options (defaults filled in) and its inputs as they are now."""
    kind = KINDS[step.kind]
    o = step.options
    if step.kind == "train":
        from geovision.engine.config import load_config

        cfg = load_config(o["config"], o["set"], check_dataset=False)
        options: dict[str, Any] = {"config": o["config"],
                                   **flatten(cfg.model_dump(mode="json"))}
        inputs = [cfg.data.dataset]
        weights = (cfg.model.params or {}).get("weights")
        if isinstance(weights, str):
            inputs.append(weights)
    elif step.kind == "command":
        options = {"argv": o["argv"], "outputs": o["outputs"]}
        inputs = list(o["inputs"])
    else:
        options = {key: o[key] for key in (*kind.required, *kind.arguments) if key in o}
        if kind.options is not None:
            options.update(to_json(step_options(step)))
        inputs = [p for key in kind.inputs for p in _as_list(o.get(key))]
    return Fingerprint(kind=step.kind, options=relative_values(options, workdir),
                       inputs=input_fingerprints(inputs, workdir))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


# ---------------------------------------------------------------------------- outputs
# Each stage owns the layout of what it writes and says when it is complete; the runner only
# asks (this is also where checks of who owns an output belong).

def outputs_of(step: Step) -> list[str]:
    """The paths a step writes."""
    o = step.options
    if step.kind == "train":
        return [str(train_session(step))]
    if step.kind == "command":
        return list(o["outputs"])
    return [str(o["output"])]


def is_complete(step: Step) -> bool:
    """True when a step's outputs are complete (whatever they were made from)."""
    o = step.options
    if step.kind == "generate":
        from geovision.synthetic import is_complete as sample_complete

        return sample_complete(o["output"])
    if step.kind == "tile":
        from geovision.tiling.store import is_complete as store_complete

        return store_complete(o["output"])
    if step.kind == "train":
        from geovision.engine.session import Session

        return Session(train_session(step)).is_complete()
    if step.kind == "infer":
        from geovision.inference.outputs import PredictionFolder

        return PredictionFolder(Path(o["output"])).is_complete(o["scenes"], step_options(step))
    if step.kind == "evaluate":
        from geovision.engine.session import Evaluation

        return Evaluation(Path(o["output"])).is_complete()
    if step.kind == "score":
        from geovision.evaluation import is_complete as score_complete

        return score_complete(o["output"])
    if step.kind == "command":
        return bool(o["outputs"]) and all(os.path.exists(p) for p in o["outputs"])
    return False


# ---------------------------------------------------------------------------- runners

def run_generate(step: Step, context: StepContext) -> None:
    """``generate``: a synthetic sample (rasters and labels)."""
    from geovision.synthetic import make_sample

    make_sample(step.options["output"], **asdict(step_options(step)))


def run_tile(step: Step, context: StepContext) -> None:
    """``tile``: resumes an interrupted store of the same inputs and options."""
    from geovision.tiling.api import tile

    o = step.options
    tile(o["rasters"], o["labels"], o["output"], step_options(step),
         scheduler=context.scheduler, workers=context.workers, overwrite=context.fresh,
         resume=not context.fresh, quiet=context.quiet)


def run_train(step: Step, context: StepContext) -> None:
    """``train``: continues the session from its last checkpoint when resuming."""
    from geovision.engine.session import Session
    from geovision.engine.trainer import train

    session = Session(train_session(step))
    overrides = step.options["set"]
    if not context.fresh and session.last.exists():
        train(resume=session.root, overrides=overrides)
    else:
        train(step.options["config"], overrides=overrides, overwrite=True)


def run_infer(step: Step, context: StepContext) -> None:
    """``infer``: finishes interrupted scenes when resuming, else replaces their outputs."""
    from geovision.inference.api import infer

    o = step.options
    infer(o["model"], o["scenes"], o["output"], step_options(step),
          scheduler=context.scheduler, workers=context.workers, overwrite=context.fresh,
          resume=not context.fresh, quiet=context.quiet)


def run_evaluate(step: Step, context: StepContext) -> None:
    """``evaluate``: metrics of a model on a split of a tile dataset."""
    from geovision.engine.evaluator import evaluate

    o = step.options
    evaluate(o["model"], o["dataset"], out_dir=o["output"], options=step_options(step))


def run_score(step: Step, context: StepContext) -> None:
    """``score``: a map against reference labels (replaces an earlier score's files)."""
    from geovision.evaluation import score

    o = step.options
    score(o["predictions"], o["labels"], o["output"], step_options(step), overwrite=True,
          quiet=context.quiet)


def command_argv(step: Step, job: Job) -> list[str]:
    """A command step's argv with its placeholders filled in: ``{python}``, ``{job_dir}``."""
    return [a.replace("{python}", sys.executable).replace("{job_dir}", str(job.path.parent))
            for a in step.options["argv"]]


def run_command(step: Step, context: StepContext) -> None:
    """``command``: a program run in the workdir, its output appended to the job log.

    Raises:
        StepFailedError: the program is not found, exits with a non-zero code, or does not
            write its declared outputs.
    """
    argv = command_argv(step, context.job)
    label = f"step '{step.name}' (command)"
    with context.log.open("a") as f:
        f.write(f"{_now()} $ {shlex.join(argv)}\n")
        f.flush()
        try:
            proc = subprocess.run(argv, cwd=context.job.workdir, stdin=subprocess.DEVNULL,
                                  stdout=f, stderr=subprocess.STDOUT, check=False)
        except OSError as exc:
            raise StepFailedError(
                f"{label}: cannot run {argv[0]}: {exc.strerror or exc} (argv[0] is looked up "
                "on PATH; '{python}' is the Python running geovision)") from None
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        raise StepFailedError(f"{label}: {shlex.join(argv)[:120]} {how}; its output is in "
                              f"{context.log}")
    missing = [shown_path(p, context.job.workdir) for p in step.options["outputs"]
               if not os.path.exists(p)]
    if missing:
        raise StepFailedError(f"{label}: exited with code 0 but did not write "
                              f"{', '.join(missing)} (its declared outputs)")


RUNNERS: dict[str, Callable[[Step, StepContext], None]] = {
    "generate": run_generate, "tile": run_tile, "train": run_train, "infer": run_infer,
    "evaluate": run_evaluate, "score": run_score, "command": run_command,
}
