"""A compact U-Net of our own: fully convolutional, any band count, any input size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net with ``depth`` down-sampling steps and channels doubling at each.

    Inputs of any height and width are accepted: they are padded (reflect) up to the next
    multiple of ``2 ** depth`` and the logits are cropped back, so the output is
    ``(N, num_classes, H, W)`` for an ``(N, in_channels, H, W)`` input.

    Args:
        in_channels: bands of the input.
        num_classes: output classes, background included.
        base_channels: channels of the first level.
        depth: number of 2x down-sampling steps.
        dropout: channel dropout after the bottleneck block (0 disables it).
    """

    def __init__(self, in_channels: int, num_classes: int, *, base_channels: int = 32,
                 depth: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.down.append(_block(cin, w, 0.0))
            cin = w
        self.bottleneck = _block(widths[-2], widths[-1], dropout)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_hi, w_lo in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True):
            self.up.append(nn.ConvTranspose2d(w_hi, w_lo, 2, stride=2))
            self.dec.append(_block(2 * w_lo, w_lo, 0.0))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` for normalized ``(N, bands, H, W)`` input."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :h, :w]
