"""Pretrained weights from where users have them, matched to a model by name and shape.

``model.params.weights`` is either

* a local file: a torchvision or timm state dict (``.pth``, ``.pt``, ``.bin``, ``.ckpt``,
  ``.safetensors``), a TorchGeo weights file (a timm state dict, e.g. a ResNet-50 for the
  13 Sentinel-2 bands), a training checkpoint holding the state dict under ``state_dict``,
  ``model``, ``model_state_dict``, ``module``, ``net`` or ``teacher`` (nested too), or a
  geovision ``model.pt`` bundle. Names may carry wrapper prefixes on either side
  (``model.``, ``module.``, ``backbone.``, ``encoder.``, ``backbone.body.``...): the
  alignment that matches the most tensors is found (:func:`align`). Files are read with
  ``torch.load(weights_only=True)`` (or safetensors): never code, only tensors;
* a hub name: ``imagenet`` (or ``true``) for an architecture's default pretrained weights,
  or a tag of the library that defines it (a timm pretrained tag such as ``a1_in1k``, a
  torchvision weights name such as ``IMAGENET1K_V2``, an smp encoder weights name such as
  ``ssl``). They are taken from the library's local cache (torch hub, Hugging Face), or
  downloaded as timm/torchvision/smp do on a machine with internet.

The stem convolution's kernels are mapped to the model's bands by name
(:func:`geovision.models.adapt.adapt_stem`). The weights' bands are ``weights_bands`` when
given (a list of names, or ``rgb``, ``sentinel2``/``sentinel2_l1c``, ``sentinel2_l2a``),
else the bands of a geovision bundle, else RGB for hub weights and for a 3-band stem, the
Sentinel-2 L1C bands for 13 and L2A for 12, and the model's own bands when the counts agree.

Everything loaded, adapted and skipped is returned as a :class:`WeightsReport` and logged.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geovision.errors import InputError, InputFileError, ModelFileError
from geovision.models.adapt import adapt_stem, find_stem, stem_scale
from geovision.models.bands import RGB, SENTINEL2_L1C, SENTINEL2_L2A, BandMatch, match_bands

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
#: ``hub(tag)`` -> a state dict of RGB weights for the architecture, or raises.
HubLoader = Callable[[str], StateDict]

#: Named band lists accepted by ``weights_bands``.
BAND_PRESETS: dict[str, tuple[str, ...]] = {
    "rgb": RGB, "sentinel2": SENTINEL2_L1C, "sentinel2_l1c": SENTINEL2_L1C,
    "sentinel2_l2a": SENTINEL2_L2A,
}
#: Keys under which checkpoints keep their state dict, in order of preference.
STATE_KEYS = ("state_dict", "model", "model_state_dict", "module", "net", "teacher")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".tar", ".pkl")
#: How many names a report shows per list.
SHOWN = 5


@dataclass(frozen=True)
class WeightsReport:
    """What loading pretrained weights did.

    Attributes:
        source: the file or hub name.
        loaded: tensors copied as they are.
        model_tensors: tensors in the model's state dict.
        file_tensors: tensors in the weights.
        prefix: ``(stripped from the weights' names, added for the model's)``.
        stem: the stem's state-dict name when its kernels were mapped to bands, else None.
        bands: the band mapping of the stem (None when the stem was not adapted).
        scale: the factor applied to the stem (see :func:`geovision.models.adapt.stem_scale`).
        skipped: ``(name in the weights, reason)`` of tensors not loaded.
        missing: model tensors the weights did not set (they keep their initial values).
    """

    source: str
    loaded: int
    model_tensors: int
    file_tensors: int
    prefix: tuple[str, str] = ("", "")
    stem: str | None = None
    bands: BandMatch | None = None
    scale: float = 1.0
    skipped: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = field(default=(), repr=False)

    def lines(self) -> list[str]:
        """The report as a few lines for train.log and the console."""
        adapted = self.stem is not None
        out = [f"weights {self.source}: loaded {self.loaded + adapted} of {self.file_tensors} "
               f"tensors into {self.model_tensors} of the model"
               + (f" (names: '{self.prefix[0]}' -> '{self.prefix[1]}')"
                  if self.prefix != ("", "") else "")]
        if adapted and self.bands is not None:
            out.append(f"  stem {self.stem}: {len(self.bands.source)} -> "
                       f"{len(self.bands.target)} bands, x{self.scale:.4g}: "
                       f"{self.bands.describe()}")
        if self.skipped:
            shown = "; ".join(f"{n} ({why})" for n, why in self.skipped[:SHOWN])
            more = f"; ... {len(self.skipped) - SHOWN} more" if len(self.skipped) > SHOWN else ""
            out.append(f"  skipped {len(self.skipped)}: {shown}{more}")
        if self.missing:
            shown = ", ".join(self.missing[:SHOWN])
            more = f", ... {len(self.missing) - SHOWN} more" if len(self.missing) > SHOWN else ""
            out.append(f"  not in the weights (initialised): {len(self.missing)}: {shown}{more}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def is_file_spec(spec: str | os.PathLike[str]) -> bool:
    """Whether a ``weights`` value names a file (a path) rather than a hub tag."""
    text = os.fspath(spec)
    return (os.sep in text or "/" in text or text.lower().endswith(WEIGHT_SUFFIXES)
            or Path(text).expanduser().exists())


def _tensors(obj: Any) -> StateDict | None:
    if not isinstance(obj, Mapping):
        return None
    for key in STATE_KEYS:
        inner = _tensors(obj.get(key))
        if inner:
            return inner
    out = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return out or None


def read_weights(path: str | os.PathLike[str]) -> tuple[StateDict, list[str] | None]:
    """Read a weights file safely: its state dict, and its bands when the file says.

    Returns:
        The tensors by name, and the band names of a geovision bundle (None otherwise).

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it holds objects other than tensors and plain values, or no tensor.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputFileError(f"{p}: pretrained weights file not found (model.params.weights)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelFileError(
            f"{p}: cannot be read as plain tensors ({first}); give a state dict saved with "
            "torch.save(model.state_dict()) or a .safetensors file") from None
    bands = None
    if isinstance(obj, Mapping) and isinstance(obj.get("geovision"), Mapping) \
            and isinstance(obj.get("bands"), list):
        from geovision.models.bands import band_names

        bands = band_names(obj["bands"])
    state = _tensors(obj)
    if not state:
        raise ModelFileError(f"{p}: holds no state dict of tensors (looked at the top level "
                             f"and under {', '.join(STATE_KEYS)})")
    return state, bands


def canonical_name(name: str) -> str:
    """A tensor name with timm's flattened module names unflattened.

    ``stages_0.blocks.1`` becomes ``stages.0.blocks.1``, so that a timm model and its
    ``features_only`` wrapper (which flattens ``stages.0`` into ``stages_0``) agree.
    """
    return re.sub(r"(?<=[A-Za-z])_(\d+)(?=\.|$)", r".\1", name)


def _prefixes(names: Sequence[str], depth: int = 3) -> set[str]:
    out = {""}
    for n in names:
        parts = n.split(".")
        for d in range(1, min(depth, len(parts) - 1) + 1):
            out.add(".".join(parts[:d]) + ".")
    return out


def align(source: Sequence[str], target: Sequence[str]) -> tuple[str, str, dict[str, str]]:
    """Pair the weights' tensor names with the model's, up to wrapper prefixes.

    Every pair (prefix of the weights' names, prefix of the model's names), each up to three
    dotted parts deep, is tried; the pair under which the most names agree (after
    :func:`canonical_name`) wins, the shorter prefixes on a tie.

    Returns:
        The prefix stripped from the weights' names, the one added for the model's, and
        ``{weights name: model name}`` of the names that agree.
    """
    def stripped(names: Sequence[str], prefix: str) -> dict[str, str]:
        return {canonical_name(n[len(prefix):]): n for n in names if n.startswith(prefix)}

    src = {p: stripped(source, p) for p in _prefixes(source)}
    dst = {p: stripped(target, p) for p in _prefixes(target)}
    best: tuple[int, int, str, str] = (0, 0, "", "")
    for ps, s in src.items():
        for pt, t in dst.items():
            n = len(s.keys() & t.keys())
            key = (n, -(len(ps) + len(pt)), ps, pt)
            if key[:2] > best[:2]:
                best = key
    _, _, ps, pt = best
    s, t = src[ps], dst[pt]
    return ps, pt, {s[k]: t[k] for k in s.keys() & t.keys()}


def weights_bands_of(spec: Any, stem_channels: int | None, bundle_bands: list[str] | None,
                     hub: bool, target: Sequence[str]) -> tuple[list[str] | None, str]:
    """The weights' band names and where they come from (for the report).

    Raises:
        InputError: ``weights_bands`` is an unknown preset, or the stem's band count is not
            one that says which bands the weights have.
    """
    if spec is not None:
        if isinstance(spec, str):
            key = spec.lower().replace("-", "_")
            if key not in BAND_PRESETS:
                raise InputError(f"model.params.weights_bands: unknown band list '{spec}'; "
                                 f"give a list of names or one of: {', '.join(BAND_PRESETS)}")
            return list(BAND_PRESETS[key]), f"weights_bands {key}"
        return [str(b) for b in spec], "weights_bands"
    if bundle_bands is not None:
        return bundle_bands, "the bundle's bands"
    if hub or stem_channels == 3:
        return list(RGB), "RGB"
    if stem_channels == len(SENTINEL2_L1C):
        return list(SENTINEL2_L1C), "Sentinel-2 L1C"
    if stem_channels == len(SENTINEL2_L2A):
        return list(SENTINEL2_L2A), "Sentinel-2 L2A"
    if stem_channels == len(target):
        return list(target), "the input's bands"
    if stem_channels is None:
        return None, ""
    raise InputError(f"model.params.weights: the weights' stem takes {stem_channels} bands; "
                     "say which with model.params.weights_bands: [name, ...] (in order)")


def load_weights(model: nn.Module, weights: str | os.PathLike[str], *,
                 bands: Sequence[str], weights_bands: Any = None,
                 hub: HubLoader | None = None) -> WeightsReport:
    """Load pretrained weights into ``model`` by name and shape, mapping the stem to bands.

    Args:
        model: the freshly built model (its stem already takes ``len(bands)`` bands).
        weights: a file or a hub name (see the module docstring).
        bands: the model input's band names, in order.
        weights_bands: the weights' band names or a preset (None: guessed, see the module
            docstring).
        hub: the architecture's hub loader (None: the architecture has no hub weights).

    Returns:
        What was loaded, adapted and skipped (also logged at INFO).

    Raises:
        InputFileError: a weights file does not exist.
        ModelFileError: the file cannot be read safely or nothing in it fits the model.
        InputError: a hub name the architecture does not know, or weights bands not given
            where they are needed.
    """
    text = os.fspath(weights)
    bundle_bands = None
    if is_file_spec(text):
        source, bundle_bands = read_weights(text)
        from_hub = False
    else:
        if hub is None:
            raise InputError(f"model.params.weights: '{text}' is not a file and this "
                             "architecture has no hub weights; give a local weights file")
        source = hub(text)
        from_hub = True
    target = model.state_dict()
    ps, pt, pairs = align(list(source), list(target))
    stem_name, stem_conv = find_stem(model, len(bands))
    stem_key = f"{stem_name}.weight"
    state: StateDict = {}
    skipped: list[tuple[str, str]] = []
    report_stem: str | None = None
    match: BandMatch | None = None
    scale = 1.0
    for name, value in source.items():
        if name not in pairs:
            reason = (f"outside '{ps}'" if ps and not name.startswith(ps)
                      else "no tensor of this name in the model")
            skipped.append((name, reason))
            continue
        key = pairs[name]
        want = target[key]
        if key == stem_key and value.ndim == 4 and value.shape[0] == want.shape[0] \
                and value.shape[2:] == want.shape[2:] and stem_conv.groups == 1:
            names, _ = weights_bands_of(weights_bands, value.shape[1], bundle_bands,
                                        from_hub, bands)
            assert names is not None
            match = match_bands(names, list(bands))
            if value.shape[1] == want.shape[1] and list(match.index) == list(
                    range(value.shape[1])):
                state[key] = value.to(want.dtype)
                match = None
            else:
                state[key] = adapt_stem(value, match).to(want.dtype)
                report_stem, scale = key, stem_scale(value.shape[1], len(bands))
        elif value.shape == want.shape:
            state[key] = value.to(want.dtype)
        else:
            skipped.append((name, f"shape {tuple(value.shape)} in the weights, "
                                  f"{tuple(want.shape)} in the model"))
    if not state:
        raise ModelFileError(
            f"{text}: no tensor matches the model by name and shape (the weights' names "
            f"start like {', '.join(list(source)[:3])}; the model's like "
            f"{', '.join(list(target)[:3])}); are they for this architecture?")
    model.load_state_dict(state, strict=False)
    report = WeightsReport(
        source=text, loaded=len(state) - (report_stem is not None),
        model_tensors=len(target), file_tensors=len(source), prefix=(ps, pt),
        stem=report_stem, bands=match if report_stem else None, scale=scale,
        skipped=tuple(skipped), missing=tuple(k for k in target if k not in state))
    for line in report.lines():
        log.info("%s", line)
    return report
