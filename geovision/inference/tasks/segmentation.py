"""Segmentation inference: blended class probabilities, a class raster and a probability raster.

Each window's softmax is weighted by its blend share and added in place on the model's device
(:mod:`geovision.inference.accumulate`); a block finishes the pieces it owns alone and hands
out its contribution to the seams it shares with its neighbours. Its payload goes to the
scene's sink (:class:`_Outputs`), which finishes each seam once its blocks are in, gathers the
pieces into full-width strips and writes them into the Cloud Optimized GeoTIFFs as they
complete, overviews included (:class:`~geovision.inference.cogwriter.CogWriter`): no
intermediate raster, nothing encoded twice, no serial tail after the last block. The same
sink finishes a scene whose blocks ran on Dask workers or in an interrupted run, from their
stored files (:meth:`Segmentation.load_block`). With ``--vectors`` every piece is traced where
its classes become final (:func:`piece_final`: in its block's task, or in the sink for a
seam) and the sink stitches the scene's polygons when it closes
(:mod:`geovision.inference.vectors`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geovision.formats import CLASS_NODATA, PROB_NODATA, ids_of
from geovision.geo.windows import padded_origins
from geovision.inference.accumulate import (
    Accumulator,
    Finished,
    SeamPart,
    Seams,
    process_pool,
    share_cache,
)
from geovision.inference.cogwriter import PROB_DEFLATE_LEVEL, CogWriter
from geovision.inference.layout import block_pieces
from geovision.inference.overviews import AVERAGE, MODE
from geovision.inference.staging import forward
from geovision.inference.strips import Layer, StripAssembler
from geovision.inference.tasks import BlockAccumulator, BlockResult, InferenceTask, SceneSink
from geovision.inference.vectors import output_name, polygonize_piece, write_scene_polygons
from geovision.inference.work import BlockData, SceneWork, Timings, piece_path, seam_path
from geovision.inference.writers import (
    TILE,
    describe_classes,
    describe_probabilities,
    load_array,
    write_class_legend,
)

if TYPE_CHECKING:
    from geovision.inference.layout import Block, Layout, Piece
    from geovision.inference.spare import NoSpareTime, SpareTime
    from geovision.models.bundle import Bundle
    from geovision.options.infer import InferOptions


def keeps_probabilities(options: InferOptions) -> bool:
    """Whether finished pieces keep their stored probabilities.

    They do for ``<stem>.prob.tif`` and for ``--vectors``, whose polygons average them.
    """
    return bool(options.probabilities or options.vectors)


def piece_final(work: SceneWork, finished: Finished) -> None:
    """Called once for every piece whose classes are final, where they are made.

    A piece one block owns alone is final in that block's task (before its files and marker
    are stored); a seam in the scene's sink, once both blocks are in. Traces its polygons
    with ``--vectors``, then maps the model's class indices to the classes' ids (what class
    rasters and stored pieces hold).
    """
    if work.polygons is not None:
        assert finished.probs is not None  # kept with --vectors (keeps_probabilities)
        polygonize_piece(work, finished.piece, finished.classes[0], finished.probs)
    finished.classes = ids_of(finished.classes, work.class_ids)  # model indices -> class ids


class _Blender(BlockAccumulator):
    """A block's windows blended in place; its finished pieces and seam contributions."""

    def __init__(self, work: SceneWork, data: BlockData, pieces: list[Piece]) -> None:
        self.work, self.block = work, data.block
        rows = tuple(padded_origins(work.grid.height, work.window, work.stride))
        cols = tuple(padded_origins(work.grid.width, work.window, work.stride))
        shares = share_cache(rows, cols, work.window, work.stride, work.options.blend,
                             work.device)
        self.acc = Accumulator(data.block, data.valid, pieces, work.num_classes, work.window,
                               shares, process_pool(work.device),
                               prob_dtype=work.options.prob_dtype,
                               probabilities=keeps_probabilities(work.options))

    def add(self, origins: list[tuple[int, int]], output: Any) -> None:
        self.acc.add(origins, output)

    def results(self) -> BlockResult:
        """Finished pieces (classes, probabilities) and contributions to seams."""
        done, parts = self.acc.finish()
        scratch = self.work.scratch
        files: list[tuple[Path, np.ndarray]] = []
        for f in done:
            piece_final(self.work, f)
            if f.probs is not None:
                files.append((piece_path(scratch, f.piece, "prob"), f.probs))
            files.append((piece_path(scratch, f.piece, "class"), f.classes))
        for part in parts:
            files.append((seam_path(scratch, part.piece, part.owner), part.total))
            files.append((seam_path(scratch, part.piece, None), part.valid))
        return BlockResult(files, (done, parts))


class _Outputs(SceneSink):
    """``<stem>.class.tif`` and ``<stem>.prob.tif``, written strip by strip as blocks finish."""

    def __init__(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
                 timings: Timings, threads: int,
                 spare: SpareTime | NoSpareTime | None = None) -> None:
        self.work, self.layout, self.out, self.stem = work, layout, out, stem
        self.bundle = bundle
        self.timings = timings
        opts, grid, k = work.options, work.grid, work.num_classes
        compact = opts.prob_dtype == "uint8"
        prob_nodata = float(PROB_NODATA) if compact else float("nan")
        cog = Path(work.scratch) / "cog"
        shutil.rmtree(cog, ignore_errors=True)  # strips of an interrupted run
        common = {"height": grid.height, "width": grid.width, "crs": grid.crs,
                  "transform": grid.transform, "workdir": cog, "threads": threads,
                  "spare": spare}
        self.writers = {"classes": CogWriter(
            out / f"{stem}.class.tif", count=1, dtype="uint8", nodata=CLASS_NODATA,
            resampling=MODE, describe=lambda d: describe_classes(d, bundle.classes), **common)}
        layers = {"classes": Layer(1, "uint8", CLASS_NODATA)}
        if opts.probabilities:
            self.writers["probs"] = CogWriter(
                out / f"{stem}.prob.tif", count=k, dtype=opts.prob_dtype, nodata=prob_nodata,
                resampling=AVERAGE, level=PROB_DEFLATE_LEVEL,
                describe=lambda d: describe_probabilities(d, bundle.classes, compact), **common)
            layers["probs"] = Layer(k, opts.prob_dtype, prob_nodata)
        self.strips = StripAssembler(grid.height, grid.width, TILE, layers)
        self.seams = Seams(opts.prob_dtype, keeps_probabilities(opts))

    def add(self, block: Block, payload: Any) -> None:
        t0 = time.perf_counter()
        done, parts = payload
        finished: list[Finished] = list(done)
        for part in parts:
            piece = self.seams.add(part)
            if piece is not None:
                piece_final(self.work, piece)
                finished.append(piece)
        for f in finished:
            arrays: dict[str, np.ndarray | None] = {"classes": f.classes}
            if "probs" in self.writers:
                arrays["probs"] = f.probs
            for _, strip in self.strips.add(f.piece.window, arrays):
                for name, writer in self.writers.items():
                    writer.write(strip[name])
        self.timings.write += time.perf_counter() - t0

    def close(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        for writer in self.writers.values():
            writer.close()
        write_class_legend(self.writers["classes"].path, self.bundle.classes)
        self.timings.extra["cog"] = self.timings.extra.get("cog", 0.0) + (
            time.perf_counter() - t0)
        t1 = time.perf_counter()
        polygons = write_scene_polygons(self.work, self.layout, self.out, self.stem)
        if polygons is None:
            return {}
        self.timings.extra["polygons"] = time.perf_counter() - t1
        return {"polygons": polygons}

    def discard(self) -> None:
        for writer in self.writers.values():
            writer.discard()


class Segmentation(InferenceTask):
    """``<stem>.class.tif`` and ``<stem>.prob.tif`` on the scene's exact grid."""

    name = "segmentation"
    skips_empty = True  # a pixel's blend takes only the windows over it

    def predict(self, model: torch.nn.Module, x: torch.Tensor, tta: bool = False,
                ) -> torch.Tensor:
        """Class probabilities ``(N, K, H, W)`` float32 on the device (averaged under TTA)."""
        return forward(model, x, tta)

    def output_problem(self, output: Any, window: int) -> str | None:
        """The model must return outputs of the window's size."""
        if tuple(output.shape[-2:]) != (window, window):
            return f"the model returns {output.shape[-2:]} outputs for this window"
        return None

    def accumulator(self, work: SceneWork, data: BlockData,
                    pieces: list[Piece]) -> BlockAccumulator:
        """Blends window probabilities into the block's pieces and seams."""
        return _Blender(work, data, pieces)

    def load_block(self, work: SceneWork, layout: Layout, block: Block) -> Any:
        """A stored block's finished pieces and seam contributions."""
        scratch, keep = work.scratch, keeps_probabilities(work.options)
        done, parts = [], []
        for piece in block_pieces(block, layout.pieces):
            if piece.is_seam:
                parts.append(SeamPart(piece, block.index,
                                      load_array(seam_path(scratch, piece, block.index)),
                                      load_array(seam_path(scratch, piece, None))))
            else:
                probs = load_array(piece_path(scratch, piece, "prob")) if keep else None
                done.append(Finished(piece, load_array(piece_path(scratch, piece, "class")),
                                     probs))
        return done, parts

    def sink(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
             timings: Timings, threads: int = 1,
             spare: SpareTime | NoSpareTime | None = None) -> SceneSink:
        """Strips into the COGs as the blocks come."""
        return _Outputs(work, layout, bundle, out, stem, timings, threads, spare)

    def output_names(self, stem: str, options: InferOptions) -> list[str]:
        """``<stem>.class.tif``, ``<stem>.prob.tif`` (unless off) and the ``--vectors`` file."""
        return ([f"{stem}.class.tif"] + ([f"{stem}.prob.tif"] if options.probabilities else [])
                + output_name(options, stem))


TASK = Segmentation()
