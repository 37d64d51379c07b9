"""Balanced sampling and ``class_weights: auto`` from the tile store's own counts (issue 12)."""

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from geovision.data import BalancedSampler, TileDataset, balanced_weights, read_info
from geovision.engine.config import load_config
from geovision.engine.runtime import Runtime
from geovision.engine.tasks import for_task
from geovision.engine.trainer import _sampler, train
from geovision.errors import ConfigError
from tests.engine.engine_helpers import split_labels


def test_balanced_weights_give_each_class_the_same_share():
    presence = np.zeros((10, 3), bool)
    presence[:7, 0] = True  # 7 tiles of class 0
    presence[7:9, 1] = True  # 2 of class 1
    presence[9, 2] = True  # 1 of class 2
    w = balanced_weights(presence)
    shares = [w[presence[:, c]].sum() / w.sum() for c in range(3)]
    assert np.allclose(shares, [1 / 3] * 3)
    mixed = np.array([[True, True, False], [False, False, False]])  # rarest class wins; empty 0
    assert balanced_weights(mixed).tolist() == [1.0, 0.0]


def test_classification_draws_balance_the_classes(cls_store):
    info = read_info(cls_store)
    ds = TileDataset(info.path, "train", info=info)
    labels = split_labels(cls_store, "label", split=0)
    counts = np.bincount(labels, minlength=info.num_classes)
    assert counts.max() >= 3 * counts[counts > 0].min()  # imbalanced to start with
    presence = ds.task.class_presence(ds)
    assert np.array_equal(presence.argmax(axis=1), labels)
    sampler = BalancedSampler(balanced_weights(presence), seed=4)
    drawn = []
    for epoch in range(200):
        sampler.set_epoch(epoch)
        drawn += sampler.order()
    assert len(sampler.order()) == len(ds) == len(sampler)
    share = np.bincount(labels[drawn], minlength=info.num_classes)[counts > 0] / len(drawn)
    assert np.allclose(share, 1 / (counts > 0).sum(), atol=0.02), share
    sampler.set_epoch(7)
    again = BalancedSampler(balanced_weights(presence), seed=4)
    again.set_epoch(7)
    assert sampler.order() == again.order()  # a function of (seed, epoch): resumable


def test_positive_fraction_fixes_the_share_of_every_batch():
    positives = np.array([True] * 3 + [False] * 37)
    s = BalancedSampler(np.ones(40), positives=positives, positive_fraction=0.5, batch_size=4,
                        seed=1)
    order = s.order()
    assert len(order) == 40
    assert [int(positives[order[i:i + 4]].sum()) for i in range(0, 40, 4)] == [2] * 10
    # two DDP processes split the same draws; each gets half of every block of 2 x 4
    ranks = [BalancedSampler(np.ones(40), positives=positives, positive_fraction=0.5,
                             batch_size=4, seed=1, rank=r, world=2) for r in (0, 1)]
    both = ranks[0].draws()
    assert ranks[0].order() == both[0::2] and ranks[1].order() == both[1::2]
    assert sum(int(positives[both[i:i + 8]].sum()) for i in range(0, 40, 8)) == 20


def test_detection_sampler_from_the_config(det_store):
    cfg = load_config({"data": {"dataset": str(det_store), "workers": 0, "batch_size": 4,
                                "sampler": {"name": "balanced", "positive_fraction": 0.75}},
                       "model": {"name": "fcos_tiny"}})
    info = read_info(det_store)
    ds = TileDataset(info.path, "train", info=info)
    rt = Runtime(device=torch.device("cpu"), amp_dtype=None)
    sampler = _sampler(ds, cfg, rt, shuffle=True)
    assert isinstance(sampler, BalancedSampler)
    with_boxes = np.array([len(ds.targets.get(int(t), ((), ()))[1]) > 0 for t in ds.indices])
    assert np.array_equal(sampler.positives, with_boxes)
    order = sampler.order()
    assert all(int(with_boxes[order[i:i + 4]].sum()) == 3 for i in range(0, len(order) - 3, 4))
    bad = load_config({"data": {"dataset": str(det_store), "sampler": {
        "name": "balanced", "positive_fraction": 0.5}}, "model": {"name": "unet"}})
    seg_like = TileDataset(info.path, "train", info=info)
    seg_like.info = replace(info, task="segmentation")
    with pytest.raises(ConfigError, match="data.sampler.positive_fraction: applies to "
                                          "detection, not segmentation"):
        _sampler(seg_like, bad, rt, shuffle=True)


def test_class_weights_auto_come_from_the_store_counts(seg_store, tmp_path, caplog):
    attrs = json.loads((seg_store / "zarr.json").read_text())["attributes"]
    pixels = np.asarray(attrs["counts"]["class_pixels"], dtype=np.float64)
    freq = pixels / pixels.sum()
    median = np.median(freq[freq > 0])
    expected = np.where(freq > 0, median / np.maximum(freq, 1e-12), 0.0)
    info = read_info(seg_store)
    ds = TileDataset(info.path, "train", info=info)
    ds.tile_array = None  # no mask is read again: the counts are the store's
    cfg = load_config({"data": {"dataset": str(seg_store)}, "model": {"name": "unet"},
                       "train": {"loss": {"class_weights": "auto"}}})
    with caplog.at_level(logging.INFO, logger="geovision"):
        loss = for_task("segmentation").criterion(cfg.train.loss, info, ds, torch.device("cpu"))
    assert torch.allclose(loss.weight, torch.tensor(expected, dtype=torch.float32))
    assert "class weights (median frequency of the store's class counts): " in caplog.text
    # a store written before the counts existed: counted over the split's masks
    old = replace(info, counts={})
    ds_old = TileDataset(info.path, "train", info=old)
    masks = split_labels(seg_store, "mask", split=0)
    direct = np.bincount(masks[masks != info.ignore_index].ravel(),
                         minlength=info.num_classes)[:info.num_classes]
    assert np.array_equal(ds_old.task.class_counts(ds_old), direct)


def test_balanced_training_run(seg_store, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="geovision"):
        result = train({"output": str(tmp_path),
                        "data": {"dataset": str(seg_store), "workers": 0, "batch_size": 8,
                                 "sampler": {"name": "balanced"}},
                        "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
                        "train": {"epochs": 1, "previews": 0}})
    assert result.epochs == 1
    assert "balanced sampler: tiles per class background " in caplog.text
