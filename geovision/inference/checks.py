"""Does a scene fit a model? Its bands, value type and pixel size against the bundle.

**Bands.** A model reads the bands it was trained on, named in the bundle (STAC asset names,
band file names, band descriptions, or ``band1``, ``band2``, ... for undescribed bands,
which is their index). :func:`model_bands` picks them:

1. ``--bands`` or ``--assets`` given: those bands, which must be as many as the model reads
   (a difference in names is logged);
2. else the scene's bands named like the model's, in the model's order (a 12-band
   Sentinel-2 scene read by a 4-band model gives B04, B03, B02, B08);
3. else, when the scene has exactly as many bands as the model, all of them in order, with a
   warning that names differ;
4. else the scene is refused, with a message listing both sides and naming ``--bands`` and
   ``--assets``.

**Pixel size.** The bundle stores its pixel size with its unit and CRS
(:class:`~geovision.geo.resolution.PixelSize`); :func:`fit_resolution` compares like with
like (:func:`~geovision.geo.resolution.compare_resolution`: metres with metres, degrees
converted at the scene's centre). A scene whose pixel size differs by more than
:data:`RESOLUTION_TOLERANCE` gets a warning. It is read at the model's pixel size
(:func:`~geovision.geo.scenes.resample_scene`: a VRT aligned to the scene's origin, covering
its extent) with ``--resample``, or by itself when the sizes differ by more than
:data:`~geovision.options.infer.AUTO_RESAMPLE_FACTOR` either way, the model's unit is known
and no ``--resolution`` was given; ``--no-resample`` never does.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from geovision.errors import InputError
from geovision.geo.raster import RasterInfo
from geovision.geo.resolution import PixelSize, ResolutionMatch, compare_resolution
from geovision.geo.scenes import SceneSource, resample_scene
from geovision.models.bundle import Bundle
from geovision.options.infer import AUTO_RESAMPLE_FACTOR, InferOptions

log = logging.getLogger(__name__)

#: Relative difference in pixel size above which a warning is given.
RESOLUTION_TOLERANCE = 0.05


def _listing(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"{i}:{n}" for i, n in enumerate(names, start=1))


def model_bands(scene: SceneSource, bundle: Bundle, opts: InferOptions) -> SceneSource:
    """The scene reading the model's bands, in the model's order (see the module).

    Raises:
        InputError: the bands given, or the scene's, do not fit the model's; the message
            lists both and says how to choose.
    """
    want = [b.name for b in bundle.bands]
    n, have = len(want), list(scene.band_names)
    model = f"the model reads {n} ({_listing(want)})"
    if opts.bands or opts.assets:
        given = "--bands" if opts.bands else "--assets"
        if len(have) != n:
            raise InputError(f"{scene.given}: {given} picks {len(have)} band(s) "
                             f"({_listing(have)}) but {model}; pick {n}, in the model's order")
        if have != want:
            log.info("%s: reading %s as the model's %s (%s)", scene.given, ", ".join(have),
                     ", ".join(want), given)
        return scene
    if all(w in have for w in want):
        return scene.select([have.index(w) + 1 for w in want])
    by_alias = _by_alias(want, have)
    if by_alias is not None:
        log.info("%s: reading bands %s as the model's %s (the same bands by name)", scene.given,
                 ", ".join(have[i - 1] for i in by_alias), ", ".join(want))
        return scene.select(by_alias)
    if len(have) == n:
        log.warning("%s: band names (%s) are not the model's (%s); reading the scene's %d "
                    "bands in order as the model's (choose others with --bands or --assets)",
                    scene.given, ", ".join(have), ", ".join(want), n)
        return scene
    missing = [w for w in want if w not in have]
    raise InputError(
        f"{scene.given}: has {len(have)} band(s) ({_listing(have)}) but {model}, and "
        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not among its names; "
        f"say which to read, in the model's order: --bands (1-based, e.g. "
        f"--bands {','.join(str(i) for i in range(1, min(n, len(have)) + 1))}) or --assets "
        "(by name)")


def _by_alias(want: list[str], have: list[str]) -> list[int] | None:
    """The scene's bands (1-based) that are the model's under other names, or None.

    ``B04``, ``SR_B4`` and ``red`` are one band (:func:`geovision.models.bands.canonical_band`);
    None unless every model band has exactly one such band in the scene.
    """
    from geovision.models.bands import canonical_band

    mine = [canonical_band(h) for h in have]
    picked = []
    for w in want:
        c = canonical_band(w)
        hits = [i for i, m in enumerate(mine) if c is not None and m == c]
        if len(hits) != 1:
            return None
        picked.append(hits[0] + 1)
    return picked if len(set(picked)) == len(picked) else None


def check_scene(info: RasterInfo, scene: SceneSource, bundle: Bundle) -> None:
    """Warn where the scene's value type differs from the model's training data."""
    trained = {b.dtype for b in bundle.bands if b.dtype}
    if trained and info.dtype not in trained:
        kind = np.dtype(info.dtype).kind
        same_kind = all(np.dtype(t).kind == kind for t in trained)
        log.warning("%s: pixels are %s but the model was trained on %s%s", scene.given,
                    info.dtype, "/".join(sorted(trained)),
                    "" if same_kind else "; the value range likely differs, so predictions "
                    "will be wrong unless the scene is rescaled to the training range")


def model_pixel_size(bundle: Bundle) -> PixelSize | None:
    """The pixel size the model was trained at (without unit for bundles before it was kept)."""
    if bundle.pixel_size is not None:
        return bundle.pixel_size
    res = bundle.resolution
    if not res or float(res[0]) <= 0 or float(res[1]) <= 0:
        return None
    return PixelSize(float(res[0]), float(res[1]), None)


def fit_resolution(scene: SceneSource, bundle: Bundle, opts: InferOptions
                   ) -> tuple[SceneSource, dict[str, Any] | None]:
    """Compare the scene's pixel size with the model's; read it at the model's when asked.

    Returns:
        The scene to read (resampled or not) and, when resampled, a record for the run
        summary (``from`` and ``to`` pixel sizes in the scene's CRS units, ``factor``,
        ``unit``, ``resampling``, ``auto``).
    """
    model = model_pixel_size(bundle)
    if model is None:
        return scene, None
    try:
        match = compare_resolution(model, scene.grid)
    except Exception as exc:  # an exotic CRS pyproj cannot place: no opinion
        log.debug("%s: pixel sizes not compared (%s)", scene.given, exc)
        return scene, None
    differs = match.differs(RESOLUTION_TOLERANCE)
    far = max(match.factor, 1 / match.factor) > AUTO_RESAMPLE_FACTOR
    auto = (opts.resample is None and far and model.crs is not None
            and opts.resolution is None)
    if not (opts.resample or auto) or not differs:
        if differs:
            _warn(scene, match, model, opts)
        return scene, None
    fx, fy = match.factors
    sx, sy = scene.grid.res
    target = (sx / fx, sy / fy)
    resampled = resample_scene(scene, target, opts.resampling)
    why = (f", automatic beyond {AUTO_RESAMPLE_FACTOR:g}x; --no-resample keeps the scene's "
           "grid" if auto else "")
    log.warning("%s: pixel size is %.3gx the model's (%s); read at the model's pixel size "
                "%.6g x %.6g (%s resampling%s): outputs are on that grid, %dx%d pixels "
                "aligned to the scene's origin", scene.given, match.factor, _sizes(match),
                target[0], target[1], opts.resampling, why, resampled.grid.width,
                resampled.grid.height)
    return resampled, {"from": [sx, sy], "to": list(target), "factor": match.factor,
                       "unit": match.unit, "resampling": opts.resampling, "auto": auto}


def _sizes(match: ResolutionMatch) -> str:
    unit = {"metre": "m", "degree": "°"}.get(match.unit, f" {match.unit}")
    return (f"{match.scene[0]:.4g}{unit} vs {match.model[0]:.4g}{unit}")


def _warn(scene: SceneSource, match: ResolutionMatch, model: PixelSize,
          opts: InferOptions) -> None:
    assumed = "" if model.crs is not None else (
        "; the model file does not say its unit, taken to be the scene's")
    hint = ("" if opts.resample is False else
            "; read it at the model's pixel size with --resample")
    log.warning("%s: pixel size is %.3gx the model's (%s); objects look %s than in training"
                "%s%s", scene.given, match.factor, _sizes(match),
                "smaller" if match.factor > 1 else "larger", assumed, hint)
