"""``infer()``: the library function behind ``geovision infer``."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio

from geovision import __version__
from geovision.atomic import write_text
from geovision.cluster import dask_client, run_graph, task, worker_threads
from geovision.device import resolve_device
from geovision.errors import InputError, InputFileError, OutputError, OutputExistsError
from geovision.formats import class_ids
from geovision.geo.paths import remote_env
from geovision.geo.raster import RasterInfo, open_raster
from geovision.geo.scenes import SceneSource, scenes_for
from geovision.geo.windows import window_stride
from geovision.inference.accumulate import process_pool
from geovision.inference.blocks import process_block
from geovision.inference.checks import check_scene, fit_resolution, model_bands
from geovision.inference.layout import Layout, block_pieces, make_layout
from geovision.inference.outputs import PredictionFolder, SceneSummary
from geovision.inference.pipeline import run_scene
from geovision.inference.predict import cached_bundle, check_window
from geovision.inference.spare import NoSpareTime, SpareTime
from geovision.inference.tasks import SceneSink, for_task
from geovision.inference.threads import ThreadBudget
from geovision.inference.threads import plan as thread_plan
from geovision.inference.vectors import check_vectors, scene_plan
from geovision.inference.window import (
    FULLY_CONVOLUTIONAL,
    WindowChoice,
    activation_bytes,
    choose_window,
)
from geovision.inference.work import SceneWork, Timings, marker
from geovision.inference.writers import ARRAY_MAGIC
from geovision.locks import check_free, output_lock
from geovision.models.bundle import Bundle
from geovision.options import fingerprint_fields, to_json, with_values
from geovision.options.infer import OUTPUT, InferOptions
from geovision.ownership import check_removable, check_writable, is_owned, record_files
from geovision.progress import progress_bar

log = logging.getLogger(__name__)

#: GDAL block cache (MB) while inferring, unless GDAL_CACHEMAX is set.
GDAL_CACHE_MB = 128


def infer(
    model_path: str | os.PathLike[str],
    scenes: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] = OUTPUT,
    options: InferOptions | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
    **kwargs: Any,
) -> list[SceneSummary]:
    """Predict whole scenes with a model bundle, window by window, on each scene's own grid.

    Scenes are resolved as ``tile`` resolves them (:func:`geovision.geo.scenes.scenes_for`);
    the model's bands are found by name (:func:`geovision.inference.checks.model_bands`) and
    a scene at another pixel size may be read at the model's
    (:func:`geovision.inference.checks.fit_resolution`).

    Args:
        model_path: a ``model.pt`` bundle.
        scenes: raster files, globs, folders, STAC items (paths or URLs), GDAL paths and
            URLs; ``options.stack`` adds scenes made of band files.
        out_dir: the folder of the outputs, named after each scene (a file's stem, a STAC
            item's id): ``<name>.class.tif``, ``<name>.prob.tif``,
            ``<name>.polygons.gpkg``,
            ``<name>.detections.geojson``, ``<name>.classes.geojson``, ``<name>.json``.
        options: see :class:`InferOptions`; its fields may also be given as keywords.
        scheduler: Dask scheduler address: blocks run as tasks on its workers, which must
            see the same files; None runs here, the cores shared between the model, reading
            and writing by a thread budget (:mod:`geovision.inference.threads`).
        workers: cores used when running here (None: every core this process may use).
        overwrite: replace existing outputs.
        resume: finish an interrupted run from the blocks already done (or skip a scene
            whose outputs are complete).
        quiet: no progress bar.
        **kwargs: fields of :class:`InferOptions`.

    Returns:
        One run summary per scene (the content of ``<stem>.json``).

    Raises:
        GeovisionError: bad model file, scene or option, or existing outputs; the message
            names the file or option.
    """
    opts = with_values(options or InferOptions(), kwargs, what="infer()")
    opts.check()
    device = str(resolve_device(opts.device))
    bundle = cached_bundle(model_path, device)
    if opts.tta and not for_task(bundle.task).tta:
        raise InputError(f"--tta: test-time augmentation does not apply to {bundle.task} "
                         "models (flips and rotations are for segmentation and "
                         "classification)")
    check_vectors(opts, bundle)  # --vectors
    if opts.window is not None:
        check_window(bundle, opts.window, len(bundle.bands), device)
    inputs = [scenes] if isinstance(scenes, (str, os.PathLike)) else list(scenes)
    sources, resampled = _scenes(inputs, bundle, opts)
    infos = [open_raster(s.path) for s in sources]
    for info, source in zip(infos, sources, strict=True):
        check_scene(info, source, bundle)
    stems = [s.name for s in sources]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(f"scenes share the name(s) {', '.join(dupes)}; outputs are named "
                         "after the scene, so give scenes distinct names")
    names = {stem: [*for_task(bundle.task).output_names(stem, opts),
                    PredictionFolder(Path(out_dir)).summary(stem).name,
                    *([f"{stem}.preview.png"] if opts.preview else [])] for stem in stems}
    for stem in stems:
        check_free(Path(out_dir) / stem)
    _check_outputs(Path(out_dir), names, overwrite=overwrite)
    with contextlib.ExitStack() as locks:
        for stem in stems:  # one lock per scene: a second run on it is told who holds it
            locks.enter_context(output_lock(Path(out_dir) / stem, option="--output"))
        _check_outputs(Path(out_dir), names, overwrite=overwrite)
        return _infer(model_path, bundle, sources, resampled, infos, Path(out_dir), opts,
                      device, scheduler=scheduler, workers=workers,
                      overwrite=overwrite, resume=resume, quiet=quiet)


def _check_outputs(out: Path, names: dict[str, list[str]], *, overwrite: bool) -> None:
    """Refuse, before any work, an output folder that cannot be written or must not be.

    Raises:
        OutputError: ``out`` is a file or not writable, or ``--overwrite`` would replace a
            file of an output's name that geovision did not write.
    """
    check_writable(out, kind="dir", option="--output")
    for files in names.values():
        for name in files:
            path = out / name
            if not os.path.lexists(path):
                continue
            if overwrite:
                check_removable(path, kind="file", option="--output")
            elif path.is_dir() or path.is_symlink() or not is_owned(path):
                raise OutputError(f"{path}: exists and geovision did not write it; nothing "
                                  "was written; choose another --output or move it away")


def _infer(model_path: str | os.PathLike[str], bundle: Bundle, sources: list[SceneSource],
           resampled: list[dict[str, Any] | None], infos: list[RasterInfo], out_dir: Path,
           opts: InferOptions, device: str, *, scheduler: str | None,
           workers: int | None, overwrite: bool, resume: bool, quiet: bool
           ) -> list[SceneSummary]:
    """:func:`infer` once its outputs are checked and locked."""
    out = out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = Path(model_path).resolve()
    budget = thread_plan(device, cores=workers or None)
    summaries: dict[int, SceneSummary] = {}
    # GDAL's block cache defaults to 5% of RAM and fills as a large scene streams through it:
    # cap it, so that peak memory does not grow with the scene (GDAL_CACHEMAX still wins).
    # rasterio passes an integer GDAL_CACHEMAX to GDALSetCacheMax64, which counts bytes.
    cache: dict[str, Any] = {} if "GDAL_CACHEMAX" in os.environ else {
        "GDAL_CACHEMAX": GDAL_CACHE_MB * 2**20}
    # Remote scenes are opened without listing their folders (when nothing local is read).
    cache.update(remote_env([f for s in sources for f in s.files]))
    with rasterio.Env(**cache), dask_client(scheduler, workers) as client:
        plans: dict[int, ScenePlan] = {}
        per_pixel: list[float] = []
        checked = {opts.window}
        for n, (source, info) in enumerate(zip(sources, infos, strict=True)):
            done = _completed(out, source.name, overwrite=overwrite, resume=resume)
            if done is not None:
                summaries[n] = done
                continue
            if opts.window is None and bundle.task in FULLY_CONVOLUTIONAL and not per_pixel:
                per_pixel.append(activation_bytes(bundle, device))
            choice = choose_window(bundle, opts, source.grid.height, source.grid.width,
                                   device, per_pixel[0] if per_pixel else None)
            if choice.window not in checked:
                check_window(bundle, choice.window, len(bundle.bands), device)
                checked.add(choice.window)
            log.info("%s: window %d px (%s)", source.name, choice.window, choice.reason)
            plans[n] = _plan_scene(model, bundle, source, info, out, opts, choice, device,
                                   resampled=resampled[n], overwrite=overwrite,
                                   resume=resume)
        try:
            if client is None:
                for n, planned in plans.items():
                    summaries[n] = _run(planned, budget, quiet=quiet)
            else:
                summaries.update(_run_on_cluster(plans, client, quiet=quiet))
        except Exception as exc:
            _drop_scratch_on_bad_input(exc, plans.values(), resume=resume)
            raise
    ordered = [summaries[n] for n in range(len(sources))]
    if opts.preview:
        ordered = [dataclasses.replace(
            s, preview=str(_write_preview(out, bundle, s, opts.preview_bands)))
                   for s in ordered]
    return ordered


def _drop_scratch_on_bad_input(exc: Exception, plans: Any, *, resume: bool) -> None:
    """Remove the scratch folders of this run when an input is bad (a damaged raster block).

    Resuming cannot help then, so nothing is left that asks for ``--resume``; an interrupted
    run (Ctrl-C, a killed worker) and a resumed one keep theirs.
    """
    from geovision.failures import translate

    if resume or not isinstance(translate(exc), InputError | InputFileError):
        return
    for plan in plans:
        shutil.rmtree(plan.work.scratch, ignore_errors=True)


def _write_preview(out: Path, bundle: Bundle, summary: SceneSummary,
                   bands: Sequence[int] | None = None) -> Path:
    """``<stem>.preview.png``: the scene beside its predicted classes or detections."""
    from geovision.inference.preview import write_preview

    stem = summary.stem
    layers = for_task(bundle.task).preview_layers(out, stem)
    path = write_preview(
        out / f"{stem}.preview.png", summary.scene_source, classes=bundle.classes,
        prediction=layers.get("prediction"), detections=layers.get("detections"),
        title=f"{stem}: {bundle.architecture['name']} ({bundle.task})", bands=bands)
    record_files(out, Path(path).name, kind="predictions")
    return Path(path)


def _scenes(inputs: list[str | os.PathLike[str]], bundle: Bundle, opts: InferOptions
            ) -> tuple[list[SceneSource], list[dict[str, Any] | None]]:
    """The scenes to predict, each reading the model's bands at the pixel size to read.

    Returns:
        The scenes, and for each the record of its resampling (None: read as it is).
    """
    prefer = None if (opts.bands or opts.assets) else [b.name for b in bundle.bands]
    given = [os.fspath(i) for i in inputs]
    with rasterio.Env(**remote_env(given)):
        found = scenes_for(given, opts, prefer=prefer)
        fitted = [fit_resolution(model_bands(s, bundle, opts), bundle, opts) for s in found]
    return [f[0] for f in fitted], [f[1] for f in fitted]


def _fingerprint(model: Path, scene: SceneSource, opts: InferOptions, window: int) -> str:
    """What makes a scratch directory resumable: the same model, scene and options.

    The scene's is :meth:`SceneSource.fingerprint`: size and time of local files, what
    GDAL reports of remote and virtual ones, a STAC item's content, the bands and the grid.
    """
    st_m = model.stat()
    key = {"model": [str(model.resolve()), st_m.st_size, st_m.st_mtime_ns],
           "scene": scene.fingerprint(),
           "options": fingerprint_fields(opts),
           "window": window, "files": ARRAY_MAGIC.decode()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _completed(out: Path, stem: str, *, overwrite: bool, resume: bool) -> SceneSummary | None:
    """The summary of a scene whose outputs are complete, when resuming (else None)."""
    folder = PredictionFolder(out)
    if resume and not overwrite and folder.scene_complete(stem):
        log.info("%s: complete already; nothing to do", folder.summary(stem))
        return SceneSummary.from_json(json.loads(folder.summary(stem).read_text()))
    return None


def _prepare(out: Path, stem: str, names: list[str], fingerprint: str, *, overwrite: bool,
             resume: bool) -> Path:
    """Check existing outputs; return the scene's scratch directory, ready.

    Raises:
        OutputExistsError: outputs or an interrupted run exist and neither overwrite nor
            resume was asked for, or resume was asked with other options.
    """
    folder = PredictionFolder(out)
    summary, scratch = folder.summary(stem), folder.scratch(stem)
    existing = [n for n in names if (out / n).exists()]
    if existing and not (overwrite or resume):
        raise OutputExistsError(f"{out / existing[0]}: exists; use --overwrite to replace it "
                                "or --resume to finish an interrupted run")
    stamp = scratch / "fingerprint"
    if scratch.exists():
        if overwrite:
            shutil.rmtree(scratch)
        elif not resume:
            raise OutputExistsError(f"{scratch}: an interrupted run left this; use --resume "
                                    "to finish it or --overwrite to start again")
        elif not stamp.exists() or stamp.read_text() != fingerprint:
            raise OutputExistsError(f"{scratch}: left by a run with another model, scene or "
                                    "options; use the same ones with --resume, or --overwrite")
    if overwrite:
        summary.unlink(missing_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    return scratch


@dataclass(frozen=True)
class ScenePlan:
    """A scene's work, decided on the client: its work, layout and the blocks still to do."""

    model: Path
    device: str
    scene: SceneSource
    info: RasterInfo
    out: Path
    stem: str
    opts: InferOptions
    names: tuple[str, ...]
    work: SceneWork
    layout: Layout
    todo: tuple[Any, ...]
    started: float  # wall-clock seconds since the epoch, comparable across machines
    resampled: dict[str, Any] | None = None
    window_reason: str = ""


def _plan_scene(model: Path, bundle: Bundle, scene: SceneSource, info: RasterInfo, out: Path,
                opts: InferOptions, choice: WindowChoice, device: str, *,
                resampled: dict[str, Any] | None, overwrite: bool, resume: bool) -> ScenePlan:
    """Prepare a scene's scratch directory and plan its blocks."""
    t_start = time.time()
    window = choice.window
    stem = scene.name
    task = for_task(bundle.task)
    names = task.output_names(stem, opts)
    scratch = _prepare(out, stem, [*names, PredictionFolder(out).summary(stem).name],
                       _fingerprint(model, scene, opts, window), overwrite=overwrite,
                       resume=resume)
    stride = window_stride(window, opts.overlap)
    layout = make_layout(scene.grid.height, scene.grid.width, window, stride,
                         per_block=opts.block_windows, cells=task.cells)
    mean, std = bundle.normalization["mean"], bundle.normalization["std"]
    work = SceneWork(scene=scene.path, grid=scene.grid,
                     bands=scene.bands, model=str(model), device=device,
                     task=bundle.task, window=window, stride=stride,
                     n_rows=len(layout.row_origins), n_cols=len(layout.col_origins),
                     num_classes=len(bundle.classes), mean=tuple(float(v) for v in mean),
                     std=tuple(float(v) for v in std), options=opts,
                     scratch=str(scratch.resolve()),
                     polygons=scene_plan(opts, layout, scene.grid, bundle) if opts.vectors
                     else None, class_ids=class_ids(bundle.classes))
    todo = tuple(b for b in layout.blocks if not marker(scratch, b).exists())
    if len(todo) < len(layout.blocks):
        log.info("%s: resuming, %d of %d blocks done", stem, len(layout.blocks) - len(todo),
                 len(layout.blocks))
    return ScenePlan(model=model, device=device, scene=scene, info=info, out=out, stem=stem,
                     opts=opts, names=tuple(names), work=work, layout=layout, todo=todo,
                     started=t_start, resampled=resampled, window_reason=choice.reason)


def complete_scene(plan: ScenePlan, timings: Timings, sink: SceneSink | None = None,
                   threads: int = 1, spare: SpareTime | NoSpareTime | None = None,
                   ) -> SceneSummary:
    """Finish the scene's outputs, write its summary, drop the scratch directory.

    Runs where the blocks ran: here, with the sink the blocks were fed to, or as the scene's
    last task on a Dask worker, which feeds a new sink the payloads the block tasks stored.

    Args:
        plan: the scene's plan.
        timings: seconds of the blocks' stages.
        sink: the scene's outputs, every block added (None: add the stored blocks now).
        threads: cores the outputs may be encoded on.
        spare: the spare-time helper that worked on the sink (let go of before the scratch
            directory is removed).
    """
    work, layout, stem, out = plan.work, plan.layout, plan.stem, plan.out
    bundle = cached_bundle(plan.model, plan.device)
    task = for_task(work.task)
    if sink is None:
        t0 = time.perf_counter()
        sink = task.sink(work, layout, bundle, out, stem, timings, threads)
        try:
            for block in layout.blocks:
                sink.add(block, task.load_block(work, layout, block))
        except BaseException:
            sink.discard()
            raise
        timings.extra["gather"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        counts = sink.close()
    except BaseException:
        sink.discard()
        raise
    finally:
        if spare is not None:  # nothing of the helper's may land in the scratch from now on
            spare.settle()
    timings.extra["outputs"] = time.perf_counter() - t1
    total = time.time() - plan.started
    summary = _summary(plan, bundle, timings, counts, total)
    summary_path = PredictionFolder(out).summary(stem)
    write_text(summary_path, json.dumps(summary.to_json(), indent=2))
    record_files(out, *[n for n in plan.names if (out / n).exists()], summary_path.name,
                 kind="predictions")  # what --overwrite may replace later
    shutil.rmtree(work.scratch, ignore_errors=True)
    log.info("%s: %d windows in %.1f s (%.2f MP/s)", stem, layout.n_windows, total,
             summary.megapixels_per_s)
    return summary


def _block_task(work: SceneWork, block: Any, pieces: list[Any]) -> dict[str, float]:
    """One block as a Dask task: torch kept to this task's share of the worker's cores."""
    worker_threads()
    return process_block(work, block, pieces)


def _complete_task(plan: ScenePlan, seconds: list[dict[str, float]]) -> SceneSummary:
    """A scene's last task on a worker: runs once every block task of the scene is done."""
    worker_threads()
    timings = Timings()
    for part in seconds:
        timings.add(Timings(part["read"], part["model"], part["write"]))
        timings.extra["blend"] = timings.extra.get("blend", 0.0) + part.get("blend", 0.0)
    return complete_scene(plan, timings)


def _run_on_cluster(plans: dict[int, ScenePlan], client: Any, *,
                    quiet: bool) -> dict[int, SceneSummary]:
    """Every scene's blocks, and then each scene's outputs, as tasks of one Dask graph.

    Scenes proceed in parallel: many small scenes are one block and one finishing task each;
    a scene too large for one worker is many block tasks spread over the workers. Each worker
    loads the model once (a per-process cache) and writes only its own scratch files, so no two
    processes write one output file.
    """
    tasks, weights, finals = [], [], []
    for n, plan in plans.items():
        blocks = [task(f"infer-{n}-block-{i}", _block_task, plan.work, b,
                       block_pieces(b, plan.layout.pieces)) for i, b in enumerate(plan.todo)]
        done = task(f"infer-{n}-finish", _complete_task, plan, deps=blocks)
        tasks += [*blocks, done]
        weights += [len(b.windows) for b in plan.todo] + [0]
        finals.append((n, len(tasks) - 1))
    results = run_graph(tasks, client=client, desc="infer", unit="win", weights=weights,
                        quiet=quiet)
    return {n: results[i] for n, i in finals}


def _run(plan: ScenePlan, budget: ThreadBudget, *, quiet: bool) -> SceneSummary:
    """Run a scene's blocks still to do here, its outputs written as they finish."""
    work, layout, todo = plan.work, plan.layout, plan.todo
    n_windows = sum(len(b.windows) for b in todo)
    pixels = work.stride * work.stride
    timings = Timings()
    bundle = cached_bundle(plan.model, plan.device)
    with budget.spare_time() as spare, progress_bar(
            total=n_windows, desc=f"infer {plan.stem}", unit="win", disable=quiet) as bar:
        sink = for_task(work.task).sink(work, layout, bundle, plan.out, plan.stem, timings,
                                        budget.gdal, spare)
        t0 = time.perf_counter()

        def advance(n: int) -> None:
            bar.update(n)
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix_str(f"{bar.n * pixels / 1e6 / elapsed:.2f} MP/s", refresh=False)

        try:
            ran = run_scene(work, layout, todo, sink, budget, advance, spare)
        except BaseException:
            sink.discard()
            spare.settle()
            raise
        finally:
            process_pool(work.device).clear()  # the memory of a scene's blocks, given back
        # the sink added its own seconds (writing strips) to ``timings``
        timings.add(ran)
        timings.extra.update({k: v + timings.extra.get(k, 0.0) for k, v in ran.extra.items()})
        return complete_scene(plan, timings, sink, spare=spare)


def _summary(plan: ScenePlan, bundle: Bundle, timings: Timings, counts: dict[str, Any],
             total: float) -> SceneSummary:
    info, layout, grid = plan.info, plan.layout, plan.scene.grid
    megapixels = grid.width * grid.height / 1e6
    scene = {**info.describe(), **plan.scene.describe()}
    if plan.resampled is not None:
        scene["resampled"] = plan.resampled
    return SceneSummary(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        geovision_version=__version__,
        model={"path": str(plan.model), "task": bundle.task,
               "architecture": bundle.architecture,
               "classes": [c.to_json() for c in bundle.classes],
               "tile_size": bundle.tile_size, "bands": [b.to_json() for b in bundle.bands]},
        scene=scene,
        parameters={**to_json(plan.opts), "window": layout.window,
                    "window_reason": plan.window_reason, "stride": layout.stride,
                    "device": plan.device},
        windows=layout.n_windows, blocks=len(layout.blocks), outputs=plan.names,
        counts=counts,
        timings={"read": round(timings.read, 3), "model": round(timings.model, 3),
                 "write": round(timings.write, 3),
                 **{k: round(v, 3) for k, v in timings.extra.items()},
                 "total": round(total, 3),
                 "model_share": round(timings.model / total, 3) if total > 0 else 0.0},
        megapixels=round(megapixels, 3),
        megapixels_per_s=round(megapixels / total, 4) if total > 0 else math.inf)
