"""Hub weights by name: torchvision, timm and smp pretrained weights, as RGB state dicts.

Each function returns the state dict of a 3-band model of the named architecture, read from
the library's cache (torch hub's ``$TORCH_HOME/hub/checkpoints``, Hugging Face's
``$HF_HOME``) or downloaded there as the library itself would. The caller maps the weights
onto its own model (:func:`geovision.models.weights.load_weights`), stem included. Nothing
here runs when a model is rebuilt from a bundle: bundles never carry ``weights``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from geovision.errors import InputError, ModelFileError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
#: Tags meaning "the architecture's default pretrained weights".
DEFAULT_TAGS = ("imagenet", "true", "default")


def is_default(tag: str) -> bool:
    """Whether a hub tag asks for the default pretrained weights."""
    return str(tag).lower() in DEFAULT_TAGS


def _fail(what: str, exc: BaseException) -> ModelFileError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelFileError(
        f"model.params.weights: {what} are neither in the local cache nor downloadable here "
        f"({type(exc).__name__}: {first}); download them on a machine with internet (the "
        "same name fills the cache) or give a local weights file")


def torchvision_weights(model: str, tag: str) -> StateDict:
    """Weights of torchvision model ``model``: ``imagenet`` (its default) or an enum name.

    Raises:
        InputError: torchvision has no weights of that name for the model.
        ModelFileError: they are not cached and cannot be downloaded.
    """
    import torchvision

    try:
        enum: Any = torchvision.models.get_model_weights(model)
    except (ValueError, KeyError) as exc:
        raise InputError(f"model.params.weights: torchvision has no pretrained weights for "
                         f"{model}") from exc
    names = [w.name for w in enum]
    if is_default(tag):
        entry = enum.DEFAULT
    elif tag.upper() in names:
        entry = enum[tag.upper()]
    else:
        raise InputError(f"model.params.weights: torchvision has no weights '{tag}' for "
                         f"{model}; valid: imagenet, {', '.join(names)}")
    try:
        return torch.hub.load_state_dict_from_url(
            entry.url, map_location="cpu", progress=False, check_hash=True, weights_only=True)
    except Exception as exc:
        raise _fail(f"torchvision weights {model} {entry.name}", exc) from None


def timm_weights(name: str, tag: str) -> StateDict:
    """Weights of timm model ``name``: ``imagenet`` (timm's default tag) or a timm tag.

    Raises:
        InputError: timm does not know ``name.tag``.
        ModelFileError: they are not cached and cannot be downloaded.
    """
    import timm

    full = name if is_default(tag) or "." in name else f"{name}.{tag}"
    base = full.split(".", 1)[0]
    pretrained = timm.list_pretrained(f"{base}.*")
    if not timm.is_model(base) or ("." in full and full not in pretrained):
        tags = [t.split(".", 1)[-1] for t in pretrained]
        raise InputError(f"model.params.weights: timm has no pretrained '{full}'; tags of "
                         f"{name}: {', '.join(tags) or 'none'}")
    try:
        model = timm.create_model(full, pretrained=True)
    except Exception as exc:
        raise _fail(f"timm weights {full}", exc) from None
    return model.state_dict()


def smp_encoder_weights(encoder: str, tag: str) -> StateDict:
    """Weights of segmentation-models-pytorch encoder ``encoder`` (``tu-NAME``: timm's).

    Raises:
        InputError: smp has no weights of that name for the encoder.
        ModelFileError: they are not cached and cannot be downloaded.
    """
    if encoder.startswith("tu-"):
        return timm_weights(encoder[3:], tag)
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    key = "imagenet" if is_default(tag) else tag
    if key not in settings:
        raise InputError(f"model.params.weights: smp encoder {encoder} has no weights "
                         f"'{tag}'; valid: {', '.join(settings) or 'none'}")
    try:
        return smp.encoders.get_encoder(
            encoder, in_channels=3, weights=key).state_dict()
    except Exception as exc:
        raise _fail(f"smp encoder weights {encoder} {key}", exc) from None
