"""Job files: parsing and checking, before any work starts.

A job file is YAML::

    name: example               # names the report (default: the file's stem)
    workdir: .                  # relative paths resolve against it (default: the file's folder)
    scheduler: null             # Dask scheduler for tile and infer (--scheduler overrides)
    workers: null               # local threads when there is no scheduler
    steps:
      - tile:                   # one key: the step kind; its value: the step's options
          rasters: ["scenes/*.tif"]
          labels: labels.gpkg
          output: tiles.zarr
          class_field: kind
      - name: segmenter         # optional step name (default: <kind>-N, N counting that kind)
        train: {config: configs/segmentation.yaml, set: {data.dataset: tiles.zarr}}
      - command:                # any program: an argv list (no shell), run in the workdir
          argv: ["{python}", "{job_dir}/areas.py", "predictions/scene.class.tif"]
          inputs: [predictions/scene.class.tif]
          outputs: [areas.csv]

A step takes its command's arguments (:data:`KINDS`) and options: the fields of the command's
options dataclass (:mod:`geovision.options`), converted and checked as the command line does,
YAML lists accepted too. An option that does not exist, a value the command line would refuse,
a missing required argument, a train step's config key that does not exist, an input pattern
that matches nothing (and is not made by an earlier step), a command step's output outside
the workdir or an unknown step kind is reported for the whole file at once, before anything
heavy is imported.
"""

from __future__ import annotations

import difflib
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geovision.errors import ConfigError, GeovisionError
from geovision.options import convert_fields, fields_of
from geovision.options.evaluate import EvaluateOptions
from geovision.options.generate import GenerateOptions
from geovision.options.infer import OUTPUT, InferOptions
from geovision.options.score import FILE_OPTIONS, ScoreOptions
from geovision.options.tile import FILE_OPTIONS as TILE_FILE_OPTIONS
from geovision.options.tile import TileOptions
from geovision.ownership import safe_name, safe_subpath
from geovision.yamlfile import read_mapping


@dataclass(frozen=True)
class Kind:
    """What a step kind takes: its arguments, its command's options, and which name paths.

    Attributes:
        required: arguments that must be given.
        arguments: further arguments that may be given.
        options: the options dataclass of the command (its fields may be given, spelled and
            checked as on the command line; see :mod:`geovision.options`), or None.
        inputs: arguments naming files or patterns that must exist (or be made earlier).
        outputs: arguments naming what the step writes.
        lists: arguments that take a list (a single string is turned into a list of one).
    """

    required: tuple[str, ...]
    arguments: tuple[str, ...] = ()
    options: type | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()

    @property
    def optional(self) -> tuple[str, ...]:
        """Everything that may be given besides the required arguments."""
        names = tuple(f.name for f in fields_of(self.options)) if self.options else ()
        return (*self.arguments, *names)


KINDS: dict[str, Kind] = {
    "generate": Kind(required=("output",), options=GenerateOptions, outputs=("output",)),
    "tile": Kind(required=("rasters", "labels", "output"), options=TileOptions,
                 inputs=("rasters", "labels", *TILE_FILE_OPTIONS), outputs=("output",),
                 lists=("rasters",)),
    "train": Kind(required=("config",), arguments=("set",), inputs=("config",)),
    "infer": Kind(required=("model", "scenes"), arguments=("output",), options=InferOptions,
                  inputs=("model", "scenes"), outputs=("output",), lists=("scenes",)),
    "evaluate": Kind(required=("model", "dataset", "output"), options=EvaluateOptions,
                     inputs=("model", "dataset"), outputs=("output",)),
    "score": Kind(required=("predictions", "labels", "output"), options=ScoreOptions,
                  inputs=("predictions", "labels", *FILE_OPTIONS), outputs=("output",)),
    "command": Kind(required=("argv",), arguments=("inputs", "outputs"), inputs=("inputs",),
                    outputs=("outputs",), lists=("argv", "inputs", "outputs")),
}
#: Placeholders of a command step's argv: the Python running geovision, the job file's folder.
ARGV_PLACEHOLDERS = ("{python}", "{job_dir}")


@dataclass(frozen=True)
class Step:
    """One step of a job: its kind, name and options (paths made absolute)."""

    kind: str
    name: str
    options: dict[str, Any]


@dataclass(frozen=True)
class Job:
    """A checked job file."""

    path: Path
    name: str
    workdir: Path
    steps: tuple[Step, ...]
    scheduler: str | None = None
    workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def step_options(step: Step) -> Any:
    """The options value of a step (its command's options dataclass), defaults filled in."""
    cls = KINDS[step.kind].options
    if cls is None:
        raise ValueError(f"step kind '{step.kind}' has no options")
    names = {f.name for f in fields_of(cls)}
    return cls(**{k: v for k, v in step.options.items() if k in names})


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_job(path: str | os.PathLike[str]) -> Job:
    """Read and check a job file.

    Raises:
        ConfigError: listing every problem found, each naming the step and option.
    """
    p = Path(path)
    doc = read_mapping(p, what="job file", shape="a mapping with a 'steps' list")
    top = ("name", "workdir", "scheduler", "workers", "steps")
    problems = [f"unknown key '{k}'{_suggest(k, top)}" for k in doc if k not in top]
    workdir = (p.parent / str(doc.get("workdir", "."))).resolve()
    job_name = str(doc.get("name") or p.stem)
    problems.extend(_name_problem(job_name, workdir, "name"))
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("'steps' must be a non-empty list of steps")
        raw_steps = []
    kinds = KINDS
    steps: list[Step] = []
    made: list[Path] = []
    counts: dict[str, int] = {}
    for i, raw in enumerate(raw_steps, start=1):
        step, errors = _check_step(i, raw, kinds, workdir, made, counts)
        problems.extend(errors)
        if step is not None:
            steps.append(step)
            made.extend(Path(out) for o in kinds[step.kind].outputs
                        for out in _as_list(step.options.get(o)))
            if step.kind == "train":
                made.append(train_session(step))
    names = [s.name for s in steps]
    problems.extend(f"step name '{n}' is used twice" for n in sorted(set(names))
                    if names.count(n) > 1)
    if problems:
        raise ConfigError(f"{p}: " + "; ".join(problems))
    workers = doc.get("workers")
    return Job(path=p.resolve(), name=job_name, workdir=workdir,
               steps=tuple(steps), scheduler=doc.get("scheduler"),
               workers=int(workers) if workers else None)


def _name_problem(name: str, workdir: Path, option: str) -> list[str]:
    """A job or step name names files in the workdir: it must be a plain name."""
    try:
        safe_name(name, workdir, option=option, what="file")
    except GeovisionError as exc:
        return [str(exc)]
    return []


def _check_step(i: int, raw: Any, kinds: dict[str, Kind], workdir: Path,
                made: list[Path], counts: dict[str, int]) -> tuple[Step | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"step {i}: expected a mapping like '- tile: {{...}}'"]
    name = raw.get("name")
    keys = [k for k in raw if k != "name"]
    if len(keys) != 1:
        return None, [f"step {i}: give exactly one step kind ({', '.join(kinds)}); "
                      f"found {', '.join(map(str, keys)) or 'none'}"]
    kind = str(keys[0])
    label = f"step {i} ({name or kind})"
    if kind not in kinds:
        return None, [f"{label}: unknown step kind '{kind}'{_suggest(kind, tuple(kinds))}; "
                      f"kinds are {', '.join(kinds)}"]
    counts[kind] = counts.get(kind, 0) + 1
    spec = kinds[kind]
    options = raw[kind] or {}
    if not isinstance(options, dict):
        return None, [f"{label}: the options of '{kind}' must be a mapping"]
    errors = []
    if name is not None:
        errors.extend(_name_problem(str(name), workdir, f"{label}: name"))
    allowed = (*spec.required, *spec.optional)
    for key in options:
        if key not in allowed:
            errors.append(f"{label}: '{kind}' has no option '{key}'{_suggest(key, allowed)}")
    errors.extend(f"{label}: '{kind}' needs option '{key}'" for key in spec.required
                  if key not in options)
    resolved = dict(options)
    for key in spec.lists:
        if isinstance(resolved.get(key), (str, int, float)):
            resolved[key] = [resolved[key]]
    if kind == "command":
        _check_command(resolved, workdir, label, errors)
    for key in (*spec.inputs, *spec.outputs):
        if resolved.get(key) is not None and not (kind == "command" and key == "outputs"):
            resolved[key] = _absolute(resolved[key], workdir)
    if kind == "infer" and resolved.get("output") is None:
        resolved["output"] = str(workdir / OUTPUT)
    if spec.options is not None:
        resolved, problems = convert_fields(spec.options, resolved)
        errors.extend(f"{label}: {p}" for p in problems)
    if kind == "train":
        resolved["set"] = _train_overrides(resolved.get("set"), workdir, label, errors)
    for key in spec.inputs:
        for pattern in _as_list(resolved.get(key)):
            if not _exists_or_made(pattern, made):
                errors.append(f"{label}: {key} '{pattern}' matches no file (and no earlier "
                              "step makes it)")
    if kind == "train" and not errors:
        errors.extend(f"{label}: {p}" for p in _config_problems(resolved))
    step = Step(kind=kind, name=str(name or f"{kind}-{counts[kind]}"), options=resolved)
    return (step if not errors else None), errors


def _check_command(options: dict[str, Any], workdir: Path, label: str,
                   errors: list[str]) -> None:
    """A command step: argv a non-empty list of words; outputs relative paths in the workdir.

    ``outputs`` become absolute paths inside the workdir (the job may replace them); ``argv``
    stays as written (its placeholders are filled in when the step runs).
    """
    argv = options.get("argv")
    if argv is not None:
        if (not isinstance(argv, list) or not argv
                or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool)
                           for a in argv)):
            errors.append(f"{label}: argv is a non-empty list of words, e.g. "
                          "[gdal_translate, -of, COG, in.tif, out.tif] (no shell)")
        else:
            options["argv"] = [str(a) for a in argv]
    for key in ("inputs", "outputs"):
        value = options.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            errors.append(f"{label}: {key} is a list of paths")
            options[key] = []
    outputs = []
    for value in options.get("outputs") or []:
        try:
            outputs.append(str(safe_subpath(value, workdir, option=f"{label}: outputs")))
        except GeovisionError as exc:
            errors.append(str(exc))
    options["outputs"] = outputs
    options.setdefault("inputs", [])


def _config_problems(options: dict[str, Any]) -> list[str]:
    """What is wrong with a train step's config and overrides (its dataset may come later)."""
    from geovision.engine.config import load_config

    try:
        load_config(options["config"], options["set"], check_dataset=False)
    except GeovisionError as exc:
        return [str(exc)]
    return []


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _absolute(value: Any, workdir: Path) -> Any:
    """Paths and patterns relative to the job's workdir become absolute (workers see them)."""
    if isinstance(value, list):
        return [_absolute(v, workdir) for v in value]
    text = str(value)
    if "://" in text or text.startswith("/vsi"):
        return text
    return str((workdir / os.path.expanduser(text)).resolve()) if not os.path.isabs(
        text) else text


def _exists_or_made(pattern: str, made: list[Path]) -> bool:
    if glob.has_magic(pattern):
        if glob.glob(pattern, recursive=True):
            return True
    elif os.path.exists(pattern) or "://" in pattern:
        return True
    static = Path(pattern.split("*")[0].split("?")[0].split("[")[0])
    return any(static == m or m in static.parents or static.is_relative_to(m) for m in made)


#: Config keys of ``train`` that hold paths, resolved against the job's workdir.
TRAIN_PATH_KEYS = ("data.dataset", "output")


def _train_overrides(value: Any, workdir: Path, label: str, errors: list[str]) -> list[str]:
    """``set`` as ``key=value`` strings, with the path keys made absolute."""
    if value is None:
        pairs: list[tuple[str, Any]] = []
    elif isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        pairs = [tuple(v.split("=", 1)) for v in value]
    else:
        errors.append(f"{label}: 'set' is a mapping of config keys to values, e.g. "
                      "{train.epochs: 2}")
        return []
    out = []
    keys = [str(k) for k, _ in pairs]
    if "output" not in keys:
        pairs.append(("output", "runs"))
    for key, val in pairs:
        if str(key) in TRAIN_PATH_KEYS:
            val = _absolute(val, workdir)
        out.append(f"{key}={_yaml_scalar(val)}")
    return out


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def train_session(step: Step) -> Path:
    """The session directory a train step writes: <output>/<name> of its resolved config."""
    from geovision.engine.config import load_config
    from geovision.engine.session import session_dir

    cfg = load_config(step.options["config"], step.options["set"], check_dataset=False)
    return session_dir(cfg.output, cfg.name).resolve()

