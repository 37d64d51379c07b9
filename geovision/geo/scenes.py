"""Scenes from what the user gives: raster files, STAC items, and stacks of band files.

:func:`resolve_scenes` turns inputs (files, globs, folders, URLs, STAC items, band-file
stacks) into :class:`SceneSource` values. A scene is what one raster was before: a path
that ``rasterio.open`` takes, the bands to read from it in order, their names, and its grid.
A scene made of several files (a STAC item's assets, a stack of band files, or a file read
at another resolution) has VRT XML text as its path (:mod:`geovision.geo.vrt`), so code that
opens and reads windows of a raster works on it unchanged.

Inputs, one scene each (or one per item):

- a raster file or GDAL path (``scene.tif``, ``/vsizip/a.zip/s.tif``, ``s3://b/s.tif``,
  ``https://host/s.tif``): its bands, named by their descriptions (``band1``, ... else);
- a STAC document (``item.json``, an http(s) URL ending in ``.json``; an ItemCollection or a
  Catalog gives one scene per item): the chosen assets (:mod:`geovision.geo.stac`);
- a folder: its STAC documents (``*.json``) when it holds any, else its rasters; with
  ``stack=True``, the folder is ONE scene whose raster files, sorted by name, are its bands;
- a list of files (``["B02.tif", "B03.tif", "B04.tif"]``, ``--stack B02.tif,B03.tif,...``):
  one scene whose bands are those files, in that order;
- a glob pattern: every match, as above.

``assets`` names the bands to read, in order: STAC asset names; for stacks, band files by
name (a file matches ``B04`` when its stem is ``B04`` or ends in ``_B04``, ``-B04`` or
``.B04``); for single files, band descriptions. The names become the scene's band names.
Bands at different resolutions are resampled onto one grid at ``resolution`` (default: the
finest of the chosen bands) with ``resampling``.

``prefer`` (what ``infer`` passes: the model's band names) picks bands by name like
``assets`` when the scene has every one of them, and is ignored otherwise, so a scene with
other names is still read (its bands are then matched by order; see
:mod:`geovision.inference.checks`). :func:`scenes_for` reads ``--stack``, ``--stack-folders``
and the other scene options of a command; :func:`resample_scene` reads a scene at another
pixel size (``infer --resample``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError

from geovision.errors import InputError, InputFileError
from geovision.geo.grid import Grid
from geovision.geo.paths import (
    RASTER_SUFFIXES,
    display_name,
    fingerprint,
    gdal_path,
    is_local,
    is_vrt_xml,
    remote_env,
)
from geovision.geo.stac import choose_assets, looks_like_stac, read_stac
from geovision.geo.vrt import BandFile, band_files, stack_grid, stack_vrt
from geovision.options.scenes import SceneOptions

#: How a scene was given.
KINDS = ("file", "stac", "stack")
_SEPARATORS = "_-."

Resolution = float | Sequence[float] | None


@dataclass(frozen=True)
class SceneSource:
    """One scene: what the user gave, and what GDAL opens to read it.

    Attributes:
        name: names the scene's outputs: a file's stem, a STAC item's id, a stack's folder.
        given: what the user gave (a path, URL, item href or folder), for messages.
        kind: ``file``, ``stac`` or ``stack``.
        path: what ``rasterio.open`` takes: a GDAL path, or VRT XML text.
        bands: 1-based bands of ``path`` to read, in order.
        band_names: a name per band read (asset names, file stems or band descriptions).
        grid: the grid the bands are read on.
        files: the files read (GDAL paths).
        resampling: how bands at another resolution are resampled (None: none is).
        digest: SHA-256 of a STAC item's JSON content (None for other kinds).
        sources: the band read for each of ``bands``, from its file's header (what
            :func:`resample_scene` stacks again at another pixel size).
    """

    name: str
    given: str
    kind: str
    path: str
    bands: tuple[int, ...]
    band_names: tuple[str, ...]
    grid: Grid
    files: tuple[str, ...]
    resampling: str | None = None
    digest: str | None = None
    sources: tuple[BandFile, ...] = ()

    @property
    def is_vrt(self) -> bool:
        """True when ``path`` is VRT XML text (several files, or resampled)."""
        return is_vrt_xml(self.path)

    @property
    def env(self) -> dict[str, str]:
        """GDAL settings for reading this scene (:func:`geovision.geo.paths.remote_env`)."""
        return remote_env(self.files)

    def describe(self) -> dict[str, Any]:
        """A source record for ``attrs.sources`` and run summaries (plain values).

        ``path`` is what the user gave (a file's GDAL path), ``vrt`` the VRT text GDAL
        opens when the scene is several files or resampled; the CRS is WKT2 with its EPSG
        code when it has one.
        """
        g = self.grid
        return {
            "name": self.name, "kind": self.kind,
            "path": self.files[0] if self.kind == "file" else self.given,
            "vrt": self.path if self.is_vrt else None,
            "bands": list(self.bands), "band_names": list(self.band_names),
            "files": list(self.files), "resampling": self.resampling,
            "crs": g.crs.to_wkt(version="WKT2_2019"), "epsg": g.crs.to_epsg(),
            "transform": list(g.transform)[:6],
            "width": g.width, "height": g.height, "res": list(g.res),
        }

    def select(self, bands: Sequence[int], *, what: str = "--bands") -> SceneSource:
        """The scene reading only some of its bands: 1-based positions among ``bands``.

        Raises:
            InputError: a position is out of range (the message lists the scene's bands).
        """
        bad = [b for b in bands if not 1 <= b <= len(self.bands)]
        if bad or not bands:
            listing = ", ".join(f"{i}:{n}" for i, n in enumerate(self.band_names, start=1))
            raise InputError(f"{what}: {self.given} has bands {listing}; "
                             f"{','.join(map(str, bad)) or 'none'} do(es) not exist "
                             "(1-based, in the scene's band order)")
        picked = [b - 1 for b in bands]
        return replace(
            self, bands=tuple(self.bands[i] for i in picked),
            band_names=tuple(self.band_names[i] for i in picked),
            sources=tuple(self.sources[i] for i in picked) if self.sources else ())

    def fingerprint(self) -> str:
        """What identifies this scene's input now (see :func:`geovision.geo.paths.fingerprint`).

        STAC scenes: the item's content digest (and local asset files' size and time); other
        scenes: each file's fingerprint. The bands, grid and resampling are part of it.
        """
        doc: dict[str, Any] = {k: v for k, v in self.describe().items() if k != "vrt"}
        if self.kind == "stac":
            doc["item"] = self.digest
            doc["files"] = [fingerprint(f) for f in self.files if is_local(f)]
        else:
            doc["files"] = [fingerprint(f) for f in self.files]
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def scenes_for(inputs: Sequence[str | os.PathLike[str]], options: SceneOptions, *,
               prefer: Sequence[str] | None = None) -> list[SceneSource]:
    """The scenes of a command: ``inputs`` and ``--stack`` read with its scene options.

    Each ``options.stack`` entry (comma-separated band files) is one more scene; ``bands``
    then picks bands of every scene by position (:meth:`SceneSource.select`).

    Raises:
        InputFileError: an input is missing or unreadable, or there is none.
        InputError: bad assets, bands, resolution or resampling; the message says which.
    """
    stacks = [[p.strip() for p in entry.split(",") if p.strip()] for entry in options.stack]
    given: list[str | os.PathLike[str] | Sequence[str]] = [*inputs, *stacks]
    if not given:
        raise InputFileError("no scene given: name raster files, folders, STAC items or URLs, "
                             "or band files with --stack")
    res = options.resolution
    scenes = resolve_scenes(
        given, assets=options.assets, prefer=prefer,
        resolution=None if res is None else (res[0] if len(res) == 1 else res),
        resampling=options.resampling, stack=options.stack_folders)
    if options.bands:
        scenes = [s.select(options.bands) for s in scenes]
    return scenes


def resolve_scenes(
    inputs: Sequence[str | os.PathLike[str] | Sequence[str]],
    *,
    assets: Sequence[str] | None = None,
    resolution: Resolution = None,
    resampling: str = "nearest",
    stack: bool = False,
    prefer: Sequence[str] | None = None,
) -> list[SceneSource]:
    """Scenes from files, globs, folders, URLs, STAC documents and stacks (see the module).

    Args:
        inputs: what the user gave; a list or tuple item is one stack of band files.
        assets: band names to read, in order (None: every data asset / every band).
        resolution: pixel size (x, y, or one number) in the scene's CRS units to read
            multi-file scenes at (None: the finest band's); a single file read at another
            resolution becomes a VRT too.
        resampling: nearest, bilinear, cubic or average.
        stack: folders are one scene each, their raster files its bands.
        prefer: band names read like ``assets`` by the scenes that have them all.

    Raises:
        InputFileError: an input is missing or unreadable.
        InputError: bad assets, bands, resolution or resampling; the message says which.
    """
    scenes: list[SceneSource] = []
    for item in inputs:
        if isinstance(item, (list, tuple)):
            scenes.append(stack_scene([str(p) for p in item], assets=assets,
                                      resolution=resolution, resampling=resampling,
                                      prefer=prefer))
            continue
        for found in _expand(os.fspath(item)):  # type: ignore[arg-type]
            if is_local(found) and os.path.isdir(found):
                scenes.extend(_folder(found, stack=stack, assets=assets,
                                      resolution=resolution, resampling=resampling,
                                      prefer=prefer))
            elif looks_like_stac(found):
                scenes.extend(stac_scenes(found, assets=assets, resolution=resolution,
                                          resampling=resampling, prefer=prefer))
            else:
                scenes.append(file_scene(found, assets=assets, resolution=resolution,
                                         resampling=resampling, prefer=prefer))
    if not scenes:
        raise InputFileError(f"{', '.join(map(str, inputs))}: no scene found")
    return scenes


def _expand(path: str) -> list[str]:
    """A local glob pattern's matches (sorted), else the path itself."""
    if is_local(path) and any(ch in path for ch in "*?["):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise InputFileError(f"{path}: pattern matches no file")
        return matches
    if is_local(path) and not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    return [path]


def _folder(folder: str, *, stack: bool, assets: Sequence[str] | None,
            resolution: Resolution, resampling: str,
            prefer: Sequence[str] | None) -> list[SceneSource]:
    entries = sorted(p for p in Path(folder).iterdir() if p.is_file())
    rasters = [str(p) for p in entries if p.suffix.lower() in RASTER_SUFFIXES]
    if stack:
        if not rasters:
            raise InputFileError(f"{folder}: no raster files to stack (looked for "
                                 f"{', '.join(RASTER_SUFFIXES)})")
        return [stack_scene(rasters, name=Path(folder).name, given=folder, assets=assets,
                            resolution=resolution, resampling=resampling, prefer=prefer)]
    items = [str(p) for p in entries if p.suffix.lower() == ".json"]
    if items:
        return [s for i in items for s in stac_scenes(i, assets=assets, resolution=resolution,
                                                       resampling=resampling, prefer=prefer)]
    if not rasters:
        raise InputFileError(f"{folder}: no rasters or STAC items in this folder (looked for "
                             f"*.json and {', '.join(RASTER_SUFFIXES)})")
    return [file_scene(r, assets=assets, resolution=resolution, resampling=resampling,
                       prefer=prefer) for r in rasters]


def file_scene(path: str, *, assets: Sequence[str] | None = None,
               resolution: Resolution = None, resampling: str = "nearest",
               prefer: Sequence[str] | None = None) -> SceneSource:
    """A scene of one raster file: its bands (or those whose descriptions ``assets`` names).

    Raises:
        InputFileError: GDAL cannot open it.
        InputError: a named band does not exist, or the file has no CRS.
    """
    gpath = gdal_path(path)
    bands = band_files(display_name(gpath), gpath)
    names = _descriptions(gpath)
    if not assets and prefer and all(n in names for n in prefer):
        assets = prefer
    if assets:
        picked = []
        for want in assets:
            if want not in names:
                raise InputError(f"{path}: no band named {want!r}; its bands are "
                                 f"{', '.join(names)} (--assets picks bands by name)")
            picked.append(names.index(want))
    else:
        picked = list(range(len(bands)))
    chosen = [replace(bands[i], name=names[i]) for i in picked]
    grid = bands[0].grid
    if resolution is not None:
        target = stack_grid(chosen, resolution, what=path)
        if target.res != grid.res:
            xml = stack_vrt(chosen, target, resampling, what=path)
            return SceneSource(name=display_name(gpath), given=str(path), kind="file",
                               path=xml, bands=tuple(range(1, len(chosen) + 1)),
                               band_names=tuple(b.name for b in chosen), grid=target,
                               files=(gpath,), resampling=resampling, sources=tuple(chosen))
    return SceneSource(name=display_name(gpath), given=str(path), kind="file", path=gpath,
                       bands=tuple(b.band for b in chosen),
                       band_names=tuple(b.name for b in chosen), grid=grid, files=(gpath,),
                       sources=tuple(chosen))


def _descriptions(path: str) -> list[str]:
    """Band names of a raster: its band descriptions, else ``band1``, ``band2``, ..."""
    try:
        with rasterio.open(path) as ds:
            return [d or f"band{i}" for i, d in enumerate(ds.descriptions, start=1)]
    except RasterioIOError as exc:  # opened a moment ago by band_files
        raise InputFileError(f"{path}: not a readable raster") from exc


def stac_scenes(href: str, *, assets: Sequence[str] | None = None,
                resolution: Resolution = None, resampling: str = "nearest",
                prefer: Sequence[str] | None = None) -> list[SceneSource]:
    """One scene per item of a STAC document: its assets stacked on one grid (a VRT).

    Raises:
        InputFileError: the document or an asset cannot be read.
        InputError: bad asset names, or assets in different CRSs.
    """
    scenes = []
    for item in read_stac(href):
        names = assets or (prefer if prefer and all(n in item.asset_names for n in prefer)
                           else None)
        chosen = choose_assets(item, names)
        bands = [b for name, apath in chosen for b in band_files(name, apath)]
        what = f"{item.href}: item {item.id}"
        grid = stack_grid(bands, resolution, what=what)
        scenes.append(SceneSource(
            name=item.id, given=item.href, kind="stac", path=stack_vrt(bands, grid,
                                                                        resampling, what=what),
            bands=tuple(range(1, len(bands) + 1)), band_names=tuple(b.name for b in bands),
            grid=grid, files=tuple(dict.fromkeys(b.path for b in bands)),
            resampling=resampling, digest=item.digest, sources=tuple(bands)))
    return scenes


def stack_scene(files: Sequence[str], *, name: str | None = None, given: str | None = None,
                assets: Sequence[str] | None = None, resolution: Resolution = None,
                resampling: str = "nearest", prefer: Sequence[str] | None = None
                ) -> SceneSource:
    """One scene whose bands are band files (a VRT), in the order given or as ``assets`` names.

    Band names are the files' stems without the prefix they all share (``LC08_..._SR_B4`` ->
    ``B4``); ``assets`` picks files by name (see the module's docstring).

    Raises:
        InputFileError: a file is missing or unreadable.
        InputError: a named band matches no file or several, or the files' CRSs differ.
    """
    if not files:
        raise InputError("--stack: give at least one band file")
    paths = [gdal_path(f) for f in files]
    for f, p in zip(files, paths, strict=True):
        if is_local(p) and not os.path.exists(p):
            raise InputFileError(f"{f}: file not found")
    stems = [display_name(p) for p in paths]
    if not assets and prefer and all(_find_band(w, stems) is not None for w in prefer):
        assets = prefer
    if assets:
        picked = [_match_band(want, stems, files) for want in assets]
        names = list(assets)
    else:
        picked = list(range(len(paths)))
        names = short_names(stems)
    bands = [b for i, n in zip(picked, names, strict=True) for b in band_files(n, paths[i])]
    label = given or ",".join(map(str, files))
    grid = stack_grid(bands, resolution, what=label)
    parents = {os.path.dirname(p) for p in paths}
    scene_name = name or (os.path.basename(parents.pop()) if len(parents) == 1 and all(
        is_local(p) for p in paths) else stems[0])
    return SceneSource(
        name=scene_name, given=label, kind="stack", path=stack_vrt(bands, grid, resampling,
                                                                   what=label),
        bands=tuple(range(1, len(bands) + 1)), band_names=tuple(b.name for b in bands),
        grid=grid, files=tuple(dict.fromkeys(b.path for b in bands)), resampling=resampling,
        sources=tuple(bands))


def resample_scene(scene: SceneSource, resolution: tuple[float, float],
                   resampling: str = "nearest") -> SceneSource:
    """The scene read at another pixel size: a VRT aligned to its origin, covering its extent.

    The new grid starts at the scene's top-left corner and has ``ceil(extent / resolution)``
    pixels along each axis (the last ones may reach past the scene's edge: nodata there).
    Every band is resampled from its own file with ``resampling``.

    Raises:
        InputError: the scene does not list its band files (made by hand), or a bad
            resampling.
    """
    if not scene.sources:
        raise InputError(f"{scene.given}: cannot be resampled (its band files are unknown)")
    g = scene.grid
    rx, ry = float(resolution[0]), float(resolution[1])
    width = max(1, math.ceil(g.width * g.res[0] / rx - 1e-6))
    height = max(1, math.ceil(g.height * g.res[1] / ry - 1e-6))
    t = g.transform
    grid = Grid(crs=g.crs, transform=Affine(rx, 0.0, t.c, 0.0, -ry, t.f), width=width,
                height=height)
    sources = tuple(replace(b, name=n) for b, n in zip(scene.sources, scene.band_names,
                                                        strict=True))
    xml = stack_vrt(sources, grid, resampling, what=scene.given)
    return replace(scene, path=xml, bands=tuple(range(1, len(sources) + 1)), grid=grid,
                   resampling=resampling, sources=sources)


def short_names(stems: Sequence[str]) -> list[str]:
    """Stems without the prefix they all share, cut after a separator (``_``, ``-``, ``.``).

    ``["LC08_X_SR_B4", "LC08_X_SR_B5"]`` -> ``["B4", "B5"]``; a single stem stays whole.
    """
    if len(stems) < 2:
        return list(stems)
    prefix = stems[0]
    for s in stems[1:]:
        while not s.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(s) for s in _SEPARATORS) + 1
    names = [s[cut:] for s in stems]
    return names if all(names) and len(set(names)) == len(names) else list(stems)


def _find_band(want: str, stems: Sequence[str]) -> int | None:
    """The index of the one file named ``want`` (see :func:`_match_band`), or None."""
    exact = [i for i, s in enumerate(stems) if s == want]
    ends = [i for i, s in enumerate(stems) if any(s.endswith(sep + want) for sep in _SEPARATORS)]
    found = exact if exact else ends
    return found[0] if len(found) == 1 else None


def _match_band(want: str, stems: Sequence[str], files: Sequence[str]) -> int:
    """The index of the one file named ``want`` (its stem, or its stem's last part)."""
    exact = [i for i, s in enumerate(stems) if s == want]
    if len(exact) == 1:
        return exact[0]
    ends = [i for i, s in enumerate(stems) if any(s.endswith(sep + want) for sep in _SEPARATORS)]
    if len(ends) == 1:
        return ends[0]
    if not ends:
        folded = [i for i, s in enumerate(stems) if s.casefold() == want.casefold() or any(
            s.casefold().endswith((sep + want).casefold()) for sep in _SEPARATORS)]
        if len(folded) == 1:
            return folded[0]
        raise InputError(f"--assets: no band file is named {want!r}; the files are "
                         f"{', '.join(stems)} (a file matches B04 when its stem is B04 or "
                         "ends in _B04, -B04 or .B04)")
    raise InputError(f"--assets: {want!r} matches several files "
                     f"({', '.join(files[i] for i in ends)}); give a longer name")
