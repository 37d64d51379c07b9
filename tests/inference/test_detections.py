"""Detections across windows: boxes mapped to the scene, merged across window seams."""

from __future__ import annotations

import numpy as np

from geovision.inference.detections import MergeRule, merge, pair_overlap, to_scene


def test_boxes_move_to_scene_pixels_and_cut_boxes_are_flagged():
    boxes = np.array([[10, 10, 20, 20], [100, 5, 128, 30], [0, 0, 5, 5]], dtype=np.float32)
    table = to_scene(boxes, np.array([0.9, 0.8, 0.7]), np.array([1, 1, 2]), (96, 96), 128,
                     1000, 1000)
    np.testing.assert_allclose(table[0, :4], [106, 106, 116, 116])
    assert list(table[:, 6]) == [0, 1, 1]  # right edge inside the scene; left/top edge too


def test_boxes_at_the_scene_edge_are_whole_and_padding_boxes_are_dropped():
    boxes = np.array([[0, 0, 10, 10], [120, 120, 128, 128]], dtype=np.float32)
    table = to_scene(boxes, np.array([0.9, 0.9]), np.array([1, 1]), (0, 0), 128, 100, 100)
    assert len(table) == 1 and table[0, 6] == 0  # the second lies in padding past the scene


def test_merge_keeps_the_whole_box_over_cut_ones_and_separates_classes():
    rule = MergeRule(iou=0.5, ios=0.5)
    whole = [110, 100, 150, 140, 0.6, 1, 0]
    cut_left = [110, 100, 128, 140, 0.95, 1, 1]
    cut_top = [110, 100, 150, 128, 0.9, 1, 1]
    other_class = [110, 100, 150, 140, 0.7, 2, 0]
    merged = merge(np.array([cut_left, whole, cut_top, other_class], dtype=float), rule)
    assert len(merged) == 2
    np.testing.assert_allclose(merged[merged[:, 5] == 1][0, :5], whole[:5])


def test_merge_joins_parts_of_an_object_no_window_saw_whole():
    # an object over x 0..150 seen by windows [0, 128) and [96, 224), cut by both
    a = [0, 0, 128, 50, 0.9, 1, 1]
    b = [96, 0, 150, 50, 0.8, 1, 1]
    merged = merge(np.array([a, b], dtype=float), MergeRule())
    np.testing.assert_allclose(merged[0, :5], [0, 0, 150, 50, 0.9])


def test_nms_keeps_distinct_objects():
    boxes = np.array([[0, 0, 10, 10, 0.9, 1, 0], [20, 0, 30, 10, 0.8, 1, 0],
                      [1, 0, 11, 10, 0.7, 1, 0]], dtype=float)
    assert len(merge(boxes, MergeRule(iou=0.5))) == 2
    assert pair_overlap(boxes[0], boxes[1]) == (0.0, 0.0)
