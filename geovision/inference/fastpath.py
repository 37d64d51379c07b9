"""A prototype of segmentation inference at model speed (issue 15, phase 1).

:func:`infer_fast` predicts a scene with the layout, reading and blending arithmetic of
:func:`geovision.inference.infer` and writes the same ``<stem>.class.tif`` and
``<stem>.prob.tif`` (same pixels at every level, same tags), but:

- the cores are shared in time, not oversubscribed (:mod:`~geovision.inference.threads`);
- windows are staged into reused (pinned on CUDA) buffers and blended in place into pooled
  accumulators (:mod:`~geovision.inference.staging`, :mod:`~geovision.inference.accumulate`);
- finished pieces go straight into full-width strips (:mod:`~geovision.inference.strips`),
  each strip is encoded once and its overviews are computed as it arrives; the COG is laid out
  from the compressed tiles at the end (:mod:`~geovision.inference.cogwriter`): no scratch
  arrays, no intermediate GeoTIFF, no second encoding.

It neither resumes nor runs on a cluster: phase 2 folds it into ``infer`` (see the report of
issue 15 for what changes where).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import rasterio
import torch

from geovision.errors import InputError
from geovision.geo.raster import open_raster
from geovision.inference.accumulate import (
    Accumulator,
    BufferPool,
    Finished,
    SeamPart,
    Seams,
    ShareCache,
)
from geovision.inference.blocks import Job, block_pieces, read_block
from geovision.inference.checks import check_scene, scene_bands
from geovision.inference.cogwriter import DEFLATE_LEVEL, CogWriter
from geovision.inference.grid import Block, make_layout, window_stride
from geovision.inference.overviews import AVERAGE, MODE
from geovision.inference.predict import cached_bundle, resolve_device
from geovision.inference.staging import BatchStager, forward
from geovision.inference.strips import Layer, StripAssembler
from geovision.inference.threads import plan
from geovision.inference.writers import NODATA, TILE, describe_classes, describe_probabilities

#: GDAL block cache (MB) while inferring, as ``infer`` sets it.
GDAL_CACHE_MB = 128


def infer_fast(
    model_path: str | os.PathLike[str],
    scene: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "predictions",
    *,
    window: int | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    blend: str = "gaussian",
    prob_dtype: str = "uint8",
    probabilities: bool = True,
    block_windows: int = 4,
    device: str = "cpu",
    strategy: str | None = None,
    deflate_level: int = DEFLATE_LEVEL,
    model_call: Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]
    | None = None,
) -> dict[str, Any]:
    """Predict one scene with a segmentation bundle; write its class and probability COGs.

    Args:
        model_path: a segmentation ``model.pt`` bundle.
        scene: the raster to predict.
        out_dir: folder of ``<stem>.class.tif``, ``<stem>.prob.tif`` and ``<stem>.json``.
        window: window side (None: the model's tile size).
        overlap: share of a window shared with each neighbour.
        batch_size: windows per model call.
        blend: ``gaussian``, ``linear`` or ``none``.
        prob_dtype: ``uint8`` (compact) or ``float32``.
        probabilities: also write ``<stem>.prob.tif``.
        block_windows: windows per block side.
        device: ``cpu``, ``cuda`` or ``auto``.
        strategy: thread strategy (see :func:`geovision.inference.threads.plan`).
        deflate_level: DEFLATE level of the outputs.
        model_call: wraps the model's forward function (the profiler times it).

    Returns:
        The run summary: timings per stage (seconds, summed where stages overlap), the model's
        share of the wall time, the thread budget, windows, blocks, peak strips held.

    Raises:
        InputError: the bundle is not a segmentation model.
    """
    t_start = time.perf_counter()
    device = resolve_device(device)
    bundle = cached_bundle(model_path, device)
    if bundle.task != "segmentation":
        raise InputError(f"{model_path}: the prototype predicts segmentation models only; "
                         f"this one is for {bundle.task}")
    info = open_raster(scene)
    check_scene(info, bundle)
    window = window or bundle.tile_size
    stride = window_stride(window, overlap)
    layout = make_layout(info.height, info.width, window, stride, per_block=block_windows)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(info.path).stem
    work = out / f".{stem}.partial"
    k = len(bundle.classes)
    bands = tuple(scene_bands(bundle))
    job = Job(scene=str(Path(info.path).resolve()), bands=bands, model=str(model_path),
              device=device, task="segmentation", window=window, stride=stride, blend=blend,
              batch_size=batch_size, tta=False, prob_dtype=prob_dtype,
              probabilities=probabilities, score_threshold=0.5,
              mean=tuple(float(v) for v in bundle.normalization["mean"]),
              std=tuple(float(v) for v in bundle.normalization["std"]), height=info.height,
              width=info.width, n_rows=len(layout.row_origins),
              n_cols=len(layout.col_origins), num_classes=k, scratch=str(work))
    budget = plan(device, strategy=strategy)
    compact = prob_dtype == "uint8"
    prob_nodata = float(NODATA) if compact else float("nan")
    grid = {"height": info.height, "width": info.width, "crs": info.crs,
            "transform": info.transform, "workdir": work, "level": deflate_level,
            "threads": budget.gdal}
    cache = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": GDAL_CACHE_MB}
    timings = dict.fromkeys(("read", "model", "blend", "finish", "write", "assemble"), 0.0)
    run = model_call(forward) if model_call is not None else forward
    with rasterio.Env(**cache):
        writers = {"classes": CogWriter(
            out / f"{stem}.class.tif", count=1, dtype="uint8", nodata=NODATA,
            resampling=MODE, describe=lambda d: describe_classes(d, bundle.classes), **grid)}
        if probabilities:
            writers["probs"] = CogWriter(
                out / f"{stem}.prob.tif", count=k, dtype=prob_dtype, nodata=prob_nodata,
                resampling=AVERAGE,
                describe=lambda d: describe_probabilities(d, bundle.classes, compact), **grid)
        layers = {"classes": Layer(1, "uint8", NODATA)}
        if probabilities:
            layers["probs"] = Layer(k, prob_dtype, prob_nodata)
        strips = StripAssembler(info.height, info.width, TILE, layers)
        seams = Seams(prob_dtype, probabilities)
        pool = BufferPool(pin=device.startswith("cuda"))
        shares = ShareCache(layout.row_origins, layout.col_origins, window, stride, blend,
                            device)
        stager = BatchStager(batch_size, len(bands), window, device)

        def read(block: Block) -> Any:
            with budget.gdal_env():
                data = read_block(job, block)
            timings["read"] += data.seconds
            return data

        def write(done: list[Finished], parts: list[SeamPart]) -> None:
            t0 = time.perf_counter()
            finished = list(done)
            for part in parts:
                piece = seams.add(part)
                if piece is not None:
                    finished.append(piece)
            for f in finished:
                for _, arrays in strips.add(f.piece.window,
                                            {"classes": f.classes, "probs": f.probs}):
                    for name, w in writers.items():
                        w.write(arrays[name])
            timings["write"] += time.perf_counter() - t0

        try:
            with budget.applied(), budget.executor() as ex, torch.inference_mode():
                blocks = layout.blocks
                pending: Future[Any] = ex.submit(read, blocks[0])
                writes: list[Future[None]] = []
                for i, block in enumerate(blocks):
                    data = pending.result()
                    if i + 1 < len(blocks):
                        pending = ex.submit(read, blocks[i + 1])
                    acc = Accumulator(block, data.valid, block_pieces(block, layout.pieces), k,
                                      window, shares, pool, prob_dtype=prob_dtype,
                                      probabilities=probabilities)
                    region = block.region
                    for origins, x in stager.batches(data.pixels, (region.row, region.col),
                                                     block.windows):
                        t0 = time.perf_counter()
                        probs = run(bundle.model, x)
                        t1 = time.perf_counter()
                        acc.add(origins, probs)
                        timings["model"] += t1 - t0
                        timings["blend"] += time.perf_counter() - t1
                    del data
                    t0 = time.perf_counter()
                    done, parts = acc.finish()
                    timings["finish"] += time.perf_counter() - t0
                    if len(writes) >= 2:  # bound the finished blocks waiting to be written
                        writes.pop(0).result()
                    writes.append(ex.submit(write, done, parts))
                for f in writes:
                    f.result()
            t0 = time.perf_counter()
            for w in writers.values():
                w.close()
            timings["assemble"] = time.perf_counter() - t0
        except BaseException:
            for w in writers.values():
                w.discard()
            raise
    total = time.perf_counter() - t_start
    summary = {
        "scene": str(info.path), "windows": layout.n_windows, "blocks": len(layout.blocks),
        "outputs": [w.path.name for w in writers.values()],
        "threads": {"strategy": budget.strategy, "cores": budget.cores, "torch": budget.torch,
                    "helpers": budget.helpers, "gdal": budget.gdal},
        "timings": {**{n: round(v, 3) for n, v in timings.items()}, "total": round(total, 3)},
        "model_share": round(timings["model"] / total, 3) if total > 0 else 0.0,
        "strips_held_peak": strips.peak, "buffers_allocated": pool.allocated,
        "megapixels": round(info.width * info.height / 1e6, 3),
        "megapixels_per_s": round(info.width * info.height / 1e6 / total, 4),
    }
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
    return summary
