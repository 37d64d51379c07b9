"""Running a job: each step with the library function of its command, skipping finished ones."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geovision.atomic import write_text
from geovision.errors import GeovisionError
from geovision.jobs.spec import Step, load_job, step_options, train_session
from geovision.options.infer import OUTPUT

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """What happened to one step."""

    name: str
    kind: str
    status: str = "pending"  # done | skipped | failed | pending
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class JobReport:
    """The job report written as JSON beside the job (or where ``--report`` says)."""

    job: str
    file: str
    scheduler: str | None
    started: str
    finished: str | None = None
    status: str = "running"
    seconds: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """Write atomically."""
        write_text(path, json.dumps(asdict(self), indent=2))


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
    """Run a job file's steps in order; a step whose outputs are complete is skipped.

    Re-running a finished job does nothing; re-running a failed or killed one finishes it
    (each step resumes its own partial output).

    Args:
        path: the job file.
        scheduler: Dask scheduler for tile and infer steps (overrides the file's).
        workers: local threads (overrides the file's).
        report: where to write the JSON report (default ``<workdir>/<name>.report.json``).
        quiet: no progress bars.
        echo: where per-step progress lines go.

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
    rep = JobReport(job=job.name, file=str(job.path), scheduler=sched, started=_now())
    rep.steps = [StepRecord(name=s.name, kind=s.kind) for s in job.steps]
    t_job = time.perf_counter()
    job.workdir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    rep.write(out)
    for i, (step, rec) in enumerate(zip(job.steps, rep.steps, strict=True), start=1):
        head = f"[{i}/{len(job.steps)}] {step.name} ({step.kind})"
        rec.outputs = outputs_of(step)
        if is_complete(step):
            rec.status = "skipped"
            echo(f"{head}: complete already, skipped")
            rep.write(out)
            continue
        echo(f"{head}: running")
        t0 = time.perf_counter()
        try:
            RUNNERS[step.kind](step, scheduler=sched, workers=n_workers, quiet=quiet)
        except Exception as exc:
            rec.status, rec.seconds = "failed", time.perf_counter() - t0
            rec.error = str(exc) if isinstance(exc, GeovisionError) else (
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            rep.status, rep.finished = "failed", _now()
            rep.seconds = time.perf_counter() - t_job
            rep.write(out)
            echo(f"{head}: failed after {rec.seconds:.1f} s (report: {out})")
            raise
        rec.status, rec.seconds = "done", time.perf_counter() - t0
        echo(f"{head}: done in {rec.seconds:.1f} s -> {', '.join(rec.outputs)}")
        rep.write(out)
    rep.status, rep.finished = "done", _now()
    rep.seconds = time.perf_counter() - t_job
    rep.write(out)
    echo(f"job {job.name}: {len(job.steps)} steps in {rep.seconds:.1f} s; report {out}")
    return rep


# ---------------------------------------------------------------------------- outputs
# Each stage owns the layout of what it writes and says when it is complete; the runner only
# asks (this is also where checks of who owns an output belong).

def outputs_of(step: Step) -> list[str]:
    """The paths a step writes."""
    o = step.options
    if step.kind == "train":
        return [str(train_session(step))]
    if step.kind == "infer":
        return [str(_infer_output(step))]
    return [str(o["output"])]


def _infer_output(step: Step) -> Path:
    return Path(step.options.get("output") or Path.cwd() / OUTPUT)


def is_complete(step: Step) -> bool:
    """True when a step's outputs are complete (so re-running it would change nothing)."""
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

        return PredictionFolder(_infer_output(step)).is_complete(o["scenes"],
                                                                 step_options(step))
    if step.kind == "evaluate":
        from geovision.engine.session import Evaluation

        return Evaluation(Path(o["output"])).is_complete()
    return False


# ---------------------------------------------------------------------------- runners

def run_generate(step: Step, **_: Any) -> None:
    """``generate``: a synthetic sample (rasters and labels)."""
    from geovision.synthetic import make_sample

    make_sample(step.options["output"], **asdict(step_options(step)))


def run_tile(step: Step, *, scheduler: str | None, workers: int | None, quiet: bool) -> None:
    """``tile``: resumes an interrupted store of the same inputs and options."""
    from geovision.tiling.api import tile

    o = step.options
    tile(o["rasters"], o["labels"], o["output"], step_options(step), scheduler=scheduler,
         workers=workers, resume=True, quiet=quiet)


def run_train(step: Step, *, quiet: bool, **_: Any) -> None:
    """``train``: continues the session from its last checkpoint when one exists."""
    from geovision.engine.session import Session
    from geovision.engine.trainer import train

    session = Session(train_session(step))
    overrides = step.options["set"]
    if session.last.exists():
        train(resume=session.root, overrides=overrides)
    else:
        train(step.options["config"], overrides=overrides, overwrite=True)


def run_infer(step: Step, *, scheduler: str | None, workers: int | None, quiet: bool) -> None:
    """``infer``: finishes interrupted scenes, skips complete ones."""
    from geovision.inference.api import infer

    o = step.options
    infer(o["model"], o["scenes"], _infer_output(step), step_options(step), scheduler=scheduler,
          workers=workers, resume=True, quiet=quiet)


def run_evaluate(step: Step, **_: Any) -> None:
    """``evaluate``: metrics of a model on a split of a tile dataset."""
    from geovision.engine.evaluator import evaluate

    o = step.options
    evaluate(o["model"], o["dataset"], out_dir=o["output"], options=step_options(step))


RUNNERS: dict[str, Callable[..., None]] = {
    "generate": run_generate, "tile": run_tile, "train": run_train, "infer": run_infer,
    "evaluate": run_evaluate,
}
