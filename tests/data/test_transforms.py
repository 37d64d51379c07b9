"""Augmentations move image, mask and boxes together (checked on a known pattern)."""

import pytest
import torch

from geovision.data.transforms import Augment, Sample, hflip, rot90, vflip


def _pattern():
    # Two bright rectangles on a 20 x 30 (H x W) tile, with their masks and boxes.
    image = torch.zeros(2, 20, 30)
    image[:, 3:8, 5:15] = 1.0  # rows 3..7, cols 5..14
    image[:, 12:19, 20:23] = 2.0
    image[1] += torch.arange(30.0)  # a second band that is not symmetric
    mask = torch.zeros(20, 30, dtype=torch.int64)
    mask[3:8, 5:15] = 1
    mask[12:19, 20:23] = 2
    boxes = torch.tensor([[5.0, 3.0, 15.0, 8.0], [20.0, 12.0, 23.0, 19.0]])
    return Sample(image, mask, boxes, torch.tensor([1, 2]))


def _assert_aligned(s):
    for cls, box, lab in zip((1, 2), s.boxes, s.box_labels, strict=True):
        assert lab == cls
        ys, xs = torch.nonzero(s.mask == cls, as_tuple=True)
        expected = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
        assert box.tolist() == expected
        bright = torch.nonzero(s.image[0] == cls, as_tuple=True)
        assert torch.equal(bright[0], ys) and torch.equal(bright[1], xs)


@pytest.mark.parametrize("op", [hflip, vflip, lambda s: rot90(s, 1), lambda s: rot90(s, 2),
                                lambda s: rot90(s, 3), lambda s: hflip(rot90(vflip(s), 1))])
def test_geometric_ops_keep_alignment(op):
    _assert_aligned(op(_pattern()))


def test_rot90_matches_torch_and_four_turns_are_identity():
    s = _pattern()
    r = rot90(s, 1)
    assert r.image.shape == (2, 30, 20)
    assert torch.equal(r.image, torch.rot90(s.image, 1, dims=(-2, -1)))
    back = rot90(s, 4)
    assert torch.equal(back.image, s.image) and torch.equal(back.boxes, s.boxes)


def test_random_augment_is_deterministic_and_aligned():
    aug = Augment()
    seen = set()
    for seed in range(12):
        a = aug(_pattern(), torch.Generator().manual_seed(seed))
        b = aug(_pattern(), torch.Generator().manual_seed(seed))
        assert torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes)
        _assert_aligned(a)
        seen.add(tuple(a.boxes[0].tolist()))
    assert len(seen) > 3  # the draws do change the geometry


def test_torchvision_v2_transforms_keep_alignment():
    aug = Augment(hflip=0, vflip=0, rot90=False,
                  v2=[{"name": "RandomHorizontalFlip", "params": {"p": 1.0}},
                      {"name": "RandomVerticalFlip", "params": {"p": 1.0}}])
    out = aug(_pattern(), torch.Generator().manual_seed(0))
    _assert_aligned(out)
    assert out.boxes[0].tolist() == [15.0, 12.0, 25.0, 17.0]


def test_unknown_v2_transform_is_a_config_error():
    from geovision.errors import ConfigError

    with pytest.raises(ConfigError, match="RandomFlipp"):
        Augment(v2=[{"name": "RandomFlipp"}])
