"""STAC items as scenes: reading Items, ItemCollections and Catalogs, and picking assets.

A STAC Item describes one scene whose bands are assets (often one file per band, at
different resolutions). geovision reads items from local JSON files or http(s) URLs (with
pystac), in three forms: an Item, an ItemCollection (a GeoJSON FeatureCollection of items),
or a Catalog / Collection (its items, recursively). Inputs taken as STAC documents: local
``*.json`` files, and http(s) URLs ending in ``.json``, with ``/items/`` in their path (STAC
API items) or without a file suffix. Asset hrefs (relative ones resolved against the item's
location) are read by GDAL: ``https://`` through ``/vsicurl/``, ``s3://`` through
``/vsis3/`` (see :func:`geovision.geo.paths.gdal_path`).

Assets are picked by name (``--assets B04,B03,B02,B08``, in that order). By default
(:func:`default_assets`) every asset that is a raster of data, in the order the item lists
them: roles include ``data``, or no roles but band metadata (``raster:bands``, ``eo:bands``
or ``bands``); and a raster media type (``image/...``, HDF, netCDF) or, without a media
type, a raster file suffix. Thumbnails, overviews and metadata are left out. Items that list
one band twice (e.g. a COG and a JPEG2000 copy) need ``--assets``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlparse

import pystac

from geovision.errors import InputError, InputFileError
from geovision.geo.paths import RASTER_SUFFIXES, gdal_path

#: Roles of assets that are never scene bands.
NOT_DATA_ROLES = ("thumbnail", "overview", "metadata")
_BAND_FIELDS = ("raster:bands", "eo:bands", "bands")


@dataclass(frozen=True)
class StacItem:
    """One STAC item as a scene's description.

    Attributes:
        id: the item's id (names the scene's outputs).
        href: where it was read (a local path or a URL), the document's own location.
        assets: (name, absolute href, roles, media type) of every asset, in item order.
        digest: SHA-256 of the item's JSON content (for resume fingerprints).
        item: the item as a plain dict.
    """

    id: str
    href: str
    assets: tuple[tuple[str, str, tuple[str, ...], str | None], ...]
    digest: str
    item: dict[str, Any]

    @property
    def asset_names(self) -> list[str]:
        """Every asset's name, in item order."""
        return [a[0] for a in self.assets]


def looks_like_stac(path: str) -> bool:
    """True for inputs read as STAC documents rather than rasters.

    Paths ending in ``.json`` (only local files and http(s) URLs can be read; others get
    an error saying so); http(s) URLs whose path has ``/items/`` (a STAC API item) or no
    file suffix at all.
    """
    if path.startswith(("http://", "https://")):
        url_path = urlparse(path).path
        last = url_path.rstrip("/").rsplit("/", 1)[-1]
        return url_path.lower().endswith(".json") or "/items/" in url_path or "." not in last
    return path.split("?", 1)[0].lower().endswith(".json")


def read_stac(href: str) -> list[StacItem]:
    """The items of a STAC document: an Item, an ItemCollection, or a Catalog / Collection.

    Args:
        href: a local path or an http(s) URL.

    Raises:
        InputFileError: the document cannot be read, or is not JSON.
        InputError: it is not a STAC Item, ItemCollection, Catalog or Collection.
    """
    base = _base_href(href)
    doc = _read_json(base)
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "Feature":
        return [_item(doc, base)]
    if kind == "FeatureCollection":
        features = doc.get("features") or []
        if not features:
            raise InputError(f"{href}: the ItemCollection holds no item")
        return [_item(f, base) for f in features]
    if kind in ("Catalog", "Collection"):
        try:
            cat = pystac.read_file(base)
            items = list(cat.get_items(recursive=True))  # type: ignore[attr-defined]
        except Exception as exc:
            raise InputFileError(f"{href}: cannot read the catalog's items ({exc})") from exc
        if not items:
            raise InputError(f"{href}: the STAC {kind.lower()} holds no item")
        return [_item(i.to_dict(), i.get_self_href() or base) for i in items]
    raise InputError(f"{href}: not a STAC Item, ItemCollection, Catalog or Collection "
                     f"(type is {kind!r})")


def _base_href(href: str) -> str:
    """A STAC document's location: an absolute local path or an http(s) URL."""
    if href.startswith("file://"):
        return os.path.abspath(href[len("file://"):])
    if href.startswith(("http://", "https://")):
        return href
    if "://" in href or href.startswith("/vsi"):
        raise InputError(f"{href}: STAC documents are read from local files or http(s) URLs; "
                         "give the item's https URL, or download it")
    return os.path.abspath(href)


def _read_json(href: str) -> Any:
    try:
        text = pystac.StacIO.default().read_text(href)
    except Exception as exc:
        raise InputFileError(f"{href}: cannot read the STAC document ({exc})") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputFileError(f"{href}: not a JSON document ({exc})") from exc


def _item(doc: dict[str, Any], base: str) -> StacItem:
    try:
        item = pystac.Item.from_dict(doc, preserve_dict=True)
    except Exception as exc:
        raise InputError(f"{base}: not a valid STAC item ({exc})") from exc
    assets = []
    for name, asset in item.assets.items():
        assets.append((name, _absolute(asset.href, base), tuple(asset.roles or ()),
                       asset.media_type))
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    return StacItem(id=item.id, href=base, assets=tuple(assets), digest=digest, item=doc)


def _absolute(href: str, base: str) -> str:
    """An asset's href made absolute against its item's location, as a GDAL path."""
    if "://" in href or href.startswith("/"):
        return gdal_path(href)
    if "://" in base:
        return gdal_path(urljoin(base, href))
    return gdal_path(os.path.normpath(os.path.join(os.path.dirname(base), href)))


def is_data_asset(asset: pystac.Asset | dict[str, Any], href: str | None = None) -> bool:
    """Whether an asset is a scene band by default (see the module's docstring)."""
    d = asset.to_dict() if isinstance(asset, pystac.Asset) else asset
    roles = tuple(d.get("roles") or ())
    if any(r in NOT_DATA_ROLES for r in roles):
        return False
    if roles and "data" not in roles:
        return False
    if not roles and not any(f in d for f in _BAND_FIELDS):
        return False
    media = (d.get("type") or "").lower()
    if media:
        return media.startswith("image/") or "hdf" in media or "netcdf" in media
    path = urlparse(href or d.get("href", "")).path
    return posixpath.splitext(path)[1].lower() in RASTER_SUFFIXES


def default_assets(item: StacItem) -> list[str]:
    """The assets read when none are named (see the module's docstring), in item order.

    Raises:
        InputError: the item has no such asset.
    """
    assets = item.item.get("assets", {})
    names = [n for n, href, _, _ in item.assets if is_data_asset(assets.get(n, {}), href)]
    if not names:
        raise InputError(f"{item.href}: item {item.id} has no data asset (role 'data' with a "
                         f"raster media type); name the assets with --assets (assets are: "
                         f"{', '.join(item.asset_names)})")
    return names


def choose_assets(item: StacItem, names: Sequence[str] | None) -> list[tuple[str, str]]:
    """(name, GDAL path) of the assets to read, in the order given (default: data assets).

    Raises:
        InputError: a named asset does not exist (the message lists the item's assets).
    """
    chosen = list(names) if names else default_assets(item)
    by_name = {n: href for n, href, _, _ in item.assets}
    missing = [n for n in chosen if n not in by_name]
    if missing:
        hint = difflib.get_close_matches(missing[0], list(by_name), n=1)
        raise InputError(
            f"{item.href}: item {item.id} has no asset {', '.join(repr(m) for m in missing)}"
            f"{f' (did you mean {hint[0]!r}?)' if hint else ''}; assets are: "
            f"{', '.join(item.asset_names)} (use --assets)")
    dupes = sorted({n for n in chosen if chosen.count(n) > 1})
    if dupes:
        raise InputError(f"--assets: {', '.join(dupes)} named twice; name each asset once")
    return [(n, by_name[n]) for n in chosen]
