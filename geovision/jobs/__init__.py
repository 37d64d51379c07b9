"""Batch jobs: a YAML file of steps (generate, tile, train, infer, evaluate) run in order."""

from geovision.jobs.runner import JobReport, run_job
from geovision.jobs.spec import Job, Step, load_job

__all__ = ["Job", "JobReport", "Step", "load_job", "run_job"]
