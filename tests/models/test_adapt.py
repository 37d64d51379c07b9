"""The stem rule: kernels mapped to bands by name, mean kernel elsewhere, scaled by c / n."""

import pytest
import torch
import torch.nn.functional as F

from geovision.errors import InputError
from geovision.models.adapt import adapt_stem, find_stem, set_in_channels, stem_scale
from geovision.models.bands import RGB, SENTINEL2_L1C, match_bands
from geovision.models.unet import UNet


def _kernel(c, seed=0):
    return torch.randn(16, c, 7, 7, generator=torch.Generator().manual_seed(seed))


def test_matched_bands_copy_their_kernel_and_the_rest_get_the_mean():
    w = _kernel(3)
    target = ["blue", "green", "red", "nir", "swir16"]
    out = adapt_stem(w, match_bands(RGB, target))
    assert out.shape == (16, 5, 7, 7)
    s = stem_scale(3, 5)
    assert s == 3 / 5
    assert torch.allclose(out[:, 0], w[:, 2] * s)  # blue <- the weights' third band
    assert torch.allclose(out[:, 2], w[:, 0] * s)
    assert torch.allclose(out[:, 3], w.mean(dim=1) * s)
    assert torch.equal(out[:, 3], out[:, 4])


def test_same_bands_in_the_same_order_are_unchanged():
    w = _kernel(3)
    assert torch.equal(adapt_stem(w, match_bands(RGB, ["R", "G", "B"])), w)


@pytest.mark.parametrize("target", [
    ["blue", "green", "red"],
    ["blue", "green", "red", "nir"],
    ["nir", "red", "green", "swir16", "blue", "swir22", "rededge1"],
])
def test_activations_keep_their_magnitude_on_alike_bands(target):
    """The documented rule: with every weights band matched once (the others on the mean
    kernel), an input with the same value in every band gives the pretrained response."""
    w = _kernel(3)
    out = adapt_stem(w, match_bands(RGB, target))
    x = torch.randn(1, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    before = F.conv2d(x.expand(1, 3, 20, 20), w)
    after = F.conv2d(x.expand(1, len(target), 20, 20), out)
    assert torch.allclose(before, after, atol=1e-4)


def test_sentinel2_weights_on_an_rgbn_dataset():
    w = _kernel(13)
    out = adapt_stem(w, match_bands(SENTINEL2_L1C, ["red", "green", "blue", "nir"]))
    s = 13 / 4
    assert torch.allclose(out, torch.stack([w[:, 3], w[:, 2], w[:, 1], w[:, 7]], 1) * s)


def test_band_list_must_fit_the_kernel():
    with pytest.raises(InputError, match="weights_bands"):
        adapt_stem(_kernel(4), match_bands(RGB, ["red"]))


def test_set_in_channels_replaces_the_stem_with_a_fresh_one():
    model = UNet(3, 2, base_channels=4, depth=1)
    name, conv = find_stem(model)
    assert name == "down.0.0"
    set_in_channels(model, 6)
    _, new = find_stem(model)
    assert new.in_channels == 6 and new.out_channels == conv.out_channels
    assert not torch.equal(new.weight[:, 0], new.weight[:, 1])  # not one kernel repeated
