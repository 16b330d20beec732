"""Every transform keeps boxes consistent with the pixels they cover (property tests over random seeds)."""

import numpy as np
import pytest

from train.augment import (AugmentConfig, flip_horizontal, hsv_jitter, mosaic, random_affine, rotate_quarter,
                           to_model_input)

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)]


def scene(rng, width=200, height=150):
    image = np.full((height, width, 3), 128, np.uint8)
    boxes, labels = [], []
    for k, colour in enumerate(COLOURS[:3]):
        w, h = int(rng.integers(20, 50)), int(rng.integers(20, 50))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        image[y:y + h, x:x + w] = colour
        boxes.append([x, y, x + w, y + h])
        labels.append(k)
    # Later rectangles may cover earlier ones; the test only checks colours that are still fully visible.
    return image, np.array(boxes, np.float32), np.array(labels, np.int64)


def colour_extent(image, colour):
    mask = np.all(np.abs(image.astype(int) - colour) < 40, axis=2)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def check(image, boxes, labels, tolerance=2.5):
    checked = 0
    for box, label in zip(boxes, labels):
        extent = colour_extent(image, COLOURS[label])
        assert extent is not None, "a kept box covers no pixels of its object"
        # Pixels of the object never lie outside its box.
        assert extent[0] >= box[0] - tolerance and extent[1] >= box[1] - tolerance
        assert extent[2] <= box[2] + tolerance and extent[3] <= box[3] + tolerance
        checked += 1
    return checked


def unoccluded(image, boxes, labels):
    keep = [i for i in range(len(boxes)) if np.allclose(colour_extent(image, COLOURS[labels[i]]), boxes[i])]
    return boxes[keep], labels[keep]


def test_affine_flip_letterbox_keep_boxes_on_their_pixels():
    checked = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        image, boxes, labels = scene(rng)
        boxes, labels = unoccluded(image, boxes, labels)
        cfg = AugmentConfig(scale=0.4, translate=0.2, hsv_h=0, hsv_s=0, hsv_v=0)
        image, boxes, labels = random_affine(image, boxes, labels, rng, cfg)
        if seed % 2:
            image, boxes = flip_horizontal(image, boxes)
        image, boxes = to_model_input(image, boxes, 160, 160, "top-left", 0)
        assert image.shape == (160, 160, 3)
        checked += check(image, boxes, labels)
    assert checked >= 40  # the property was checked on many boxes, not vacuously


@pytest.mark.parametrize("clockwise", (True, False))
def test_a_quarter_turn_keeps_boxes_on_their_pixels(clockwise):
    checked = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        image, boxes, labels = scene(rng)  # wider than tall: the turn swaps the sides
        boxes, labels = unoccluded(image, boxes, labels)
        turned, moved = rotate_quarter(image, boxes, clockwise)
        assert turned.shape == (200, 150, 3)
        assert np.allclose(moved[:, 2] - moved[:, 0], boxes[:, 3] - boxes[:, 1])  # a box's height is its width
        checked += check(turned, moved, labels, tolerance=0)  # exact: no resampling
        # A turn back the other way gives the picture and the boxes back.
        back, restored = rotate_quarter(turned, moved, not clockwise)
        assert np.array_equal(back, image) and np.allclose(restored, boxes)
    assert checked >= 20


@pytest.mark.parametrize("seed", range(6))
def test_mosaic_keeps_boxes_on_their_pixels(seed):
    rng = np.random.default_rng(100 + seed)
    pictures = []
    for _ in range(4):
        image, boxes, labels = scene(rng)
        boxes, labels = unoccluded(image, boxes, labels)
        pictures.append((image, boxes, labels))
    canvas, boxes, labels = mosaic(pictures, (192, 192), rng, AugmentConfig(min_visible=0.0))
    assert canvas.shape == (192, 192, 3) and len(boxes) == len(labels)
    for box in boxes:  # every box is inside the canvas and not degenerate
        assert 0 <= box[0] < box[2] <= 192 and 0 <= box[1] < box[3] <= 192


def test_hsv_jitter_keeps_geometry():
    rng = np.random.default_rng(0)
    image, _, _ = scene(rng)
    out = hsv_jitter(image, rng, AugmentConfig())
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)


def test_boxes_mostly_pushed_out_are_dropped():
    rng = np.random.default_rng(0)
    image = np.zeros((100, 100, 3), np.uint8)
    boxes = np.array([[0, 0, 10, 10], [40, 40, 60, 60]], np.float32)
    cfg = AugmentConfig(scale=0.0, translate=0.0)
    _, kept, labels = random_affine(image, boxes, np.array([0, 1]), rng, cfg)
    assert len(kept) == 2
    shifted = boxes - np.array([8, 8, 8, 8], np.float32)  # the first box keeps 4 of 100 px: below 25%
    from train.augment import clip_boxes

    kept, labels = clip_boxes(shifted, np.array([0, 1]), 100, 100, 0.25)
    assert labels.tolist() == [1]
