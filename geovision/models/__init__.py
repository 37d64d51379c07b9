"""Architecture registry and the model bundle; everything inference needs, nothing of training."""

from __future__ import annotations

from geovision.models.bands import BandMatch, canonical_band, match_bands
from geovision.models.bundle import Bundle, format_bundle_summary, load_bundle, save_bundle
from geovision.models.finetune import (
    encoder_modules,
    encoder_parameters,
    freeze_encoder,
    is_encoder_frozen,
    param_groups,
)
from geovision.models.registry import (
    TASKS,
    architectures,
    build_model,
    build_model_with_weights,
)
from geovision.models.weights import WeightsReport, load_weights

__all__ = [
    "TASKS",
    "BandMatch",
    "Bundle",
    "WeightsReport",
    "architectures",
    "build_model",
    "build_model_with_weights",
    "canonical_band",
    "encoder_modules",
    "encoder_parameters",
    "format_bundle_summary",
    "freeze_encoder",
    "is_encoder_frozen",
    "load_bundle",
    "load_weights",
    "match_bands",
    "param_groups",
    "save_bundle",
]
