"""Fine-tuning controls on the model side: which part is the encoder, freezing it.

The *encoder* is the part of a model that pretrained weights fill: an smp model's
``encoder``, a detector's backbone body (not its new feature pyramid), a torchvision
segmenter's ``backbone``, a classifier without its head; for our compact U-Net, the
down-sampling path and the bottleneck. The training loop uses:

* :func:`encoder_parameters` / :func:`param_groups` for ``train.encoder_lr_scale``
  (encoder learning rate = lr x scale);
* :func:`freeze_encoder` for ``train.freeze_encoder_epochs``: parameters stop requiring
  gradients and the encoder's batch-norm layers stay in eval mode (running statistics
  frozen, even after ``model.train()``), until ``freeze_encoder(model, False)``.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: Children of a classifier that form its head (torchvision and timm names).
HEAD_NAMES = ("fc", "classifier", "head", "heads", "global_pool", "head_drop")
_HOOKS = "_geovision_frozen_hooks"
_FROZEN = "_geovision_frozen_params"


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def encoder_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that form the encoder of ``model`` (see the module docstring).

    Returns:
        The encoder's modules (an empty list when the model has none that we know).
    """
    from geovision.models.detection import TinyBackbone
    from geovision.models.registry import SegmentationOutput
    from geovision.models.segmentation import EncoderDecoder
    from geovision.models.unet import UNet

    m = _unwrap(model)
    if isinstance(m, EncoderDecoder):
        return [m.encoder]
    if isinstance(m, UNet):
        return [m.down, m.bottleneck]
    if isinstance(m, SegmentationOutput):
        return [m.model.backbone]  # type: ignore[list-item]
    backbone = getattr(m, "backbone", None)
    if isinstance(backbone, nn.Module):  # torchvision detectors
        if isinstance(backbone, TinyBackbone):
            return [backbone.stages]
        body = getattr(backbone, "body", None)
        if isinstance(body, nn.Module):  # BackboneWithFPN, TimmFPN
            return [body]
        return [backbone]
    return [child for name, child in m.named_children() if name not in HEAD_NAMES]


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of :func:`encoder_modules`, each once."""
    seen: set[int] = set()
    out = []
    for module in encoder_modules(model):
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def param_groups(model: nn.Module, lr: float, encoder_lr_scale: float = 1.0,
                 ) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the encoder at ``lr * encoder_lr_scale``, the rest at ``lr``.

    Every parameter is in a group, frozen ones too (an optimizer skips parameters without
    gradients), so that unfreezing needs no new optimizer. Empty groups are left out.
    """
    enc = encoder_parameters(model)
    ids = {id(p) for p in enc}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"name": "encoder", "params": enc, "lr": lr * encoder_lr_scale},
              {"name": "decoder", "params": rest, "lr": lr}]
    return [g for g in groups if g["params"]]


def _norms_eval(module: nn.Module, _inputs: Any) -> None:
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.training:
            m.eval()


def freeze_encoder(model: nn.Module, frozen: bool = True) -> int:
    """Freeze (or unfreeze) the encoder: gradients off and batch-norm statistics fixed.

    Frozen, the encoder's parameters have ``requires_grad=False`` and its batch-norm layers
    are put in eval mode before every forward pass (a hook), so neither the weights nor the
    running statistics change while the rest of the model trains. Unfreezing undoes both:
    the parameters that were trainable before the freeze are trainable again (those the
    model itself keeps frozen stay so; without a freeze before, every encoder parameter).

    Returns:
        The number of parameter tensors frozen (or unfrozen).
    """
    m = _unwrap(model)
    modules = encoder_modules(m)
    for handle in getattr(m, _HOOKS, []):
        handle.remove()
    hooks = []
    if frozen:
        hooks = [module.register_forward_pre_hook(_norms_eval) for module in modules]
        for module in modules:
            _norms_eval(module, None)
    elif m.training:
        for module in modules:
            module.train()
    object.__setattr__(m, _HOOKS, hooks)
    params = encoder_parameters(m)
    if frozen:
        # remember what was trainable: parameters a model keeps frozen by itself (a
        # detector's first layers) stay frozen when the encoder is unfrozen
        was = [p for p in params if p.requires_grad]
        object.__setattr__(m, _FROZEN, was)
        for p in params:
            p.requires_grad_(False)
        return len(params)
    restore = getattr(m, _FROZEN, None)
    params = params if restore is None else restore
    for p in params:
        p.requires_grad_(True)
    object.__setattr__(m, _FROZEN, None)
    return len(params)


def is_encoder_frozen(model: nn.Module) -> bool:
    """Whether :func:`freeze_encoder` froze the encoder of ``model``."""
    return bool(getattr(_unwrap(model), _HOOKS, []))
