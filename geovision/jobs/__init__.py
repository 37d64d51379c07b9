"""Batch jobs: a YAML file of steps (generate, tile, train, infer, evaluate, score, command).

Steps run in order; a step is skipped only when its outputs are complete and were made with
the same options and inputs (:mod:`geovision.jobs.fingerprint`).
"""

from geovision.jobs.runner import JobReport, run_job
from geovision.jobs.spec import Job, Step, load_job

__all__ = ["Job", "JobReport", "Step", "load_job", "run_job"]
