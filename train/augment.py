"""Augmentation, every transform applied to pixels and boxes together.

The final placement is the deployment letterbox (models/letterbox.py: top-left, as DVPP's
Resizer_KeepAspectRatio_Fit), so training sees pictures laid out exactly as the NPU will. Random scale and
translation happen before it, as an affine warp of the source picture; boxes that leave the picture are
clipped and dropped when less than `min_visible` of their area remains.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from models.letterbox import letterbox_geometry, letterbox_image


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    scale: float = 0.25  # random zoom in [1 - scale, 1 + scale]
    translate: float = 0.1  # random shift, fraction of the picture size
    hsv_h: float = 0.015  # hue jitter (fraction of the colour circle)
    hsv_s: float = 0.5  # saturation gain jitter
    hsv_v: float = 0.3  # value gain jitter
    flip: float = 0.5  # horizontal flip probability
    rotate90: float = 0.0  # probability of a quarter turn, either way
    mosaic: float = 0.0  # probability of a 2x2 mosaic of four pictures
    min_visible: float = 0.25  # keep a clipped box when this fraction of its area remains


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    gains = rng.uniform(-1, 1, 3) * (cfg.hsv_h, cfg.hsv_s, cfg.hsv_v) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v))), cv2.COLOR_HSV2BGR)


def clip_boxes(boxes: np.ndarray, labels: np.ndarray, width: int, height: int, min_visible: float):
    if not len(boxes):
        return boxes, labels
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = boxes.copy()
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, width)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, height)
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible >= min_visible * np.maximum(area, 1e-6)) & (clipped[:, 2] - clipped[:, 0] >= 2) & \
        (clipped[:, 3] - clipped[:, 1] >= 2)
    return clipped[keep], labels[keep]


def random_affine(image, boxes, labels, rng, cfg: AugmentConfig):
    height, width = image.shape[:2]
    zoom = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    tx = rng.uniform(-cfg.translate, cfg.translate) * width
    ty = rng.uniform(-cfg.translate, cfg.translate) * height
    matrix = np.array([[zoom, 0, (1 - zoom) * width / 2 + tx], [0, zoom, (1 - zoom) * height / 2 + ty]], np.float32)
    warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))
    moved = boxes.copy()
    moved[:, 0::2] = boxes[:, 0::2] * zoom + matrix[0, 2]
    moved[:, 1::2] = boxes[:, 1::2] * zoom + matrix[1, 2]
    moved, labels = clip_boxes(moved, labels, width, height, cfg.min_visible)
    return warped, moved, labels


def flip_horizontal(image, boxes):
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return image[:, ::-1].copy(), flipped


def rotate_quarter(image, boxes, clockwise: bool):
    """A quarter turn of the picture and its boxes (cv2.rotate: exact, no resampling)."""
    height, width = image.shape[:2]
    turned = np.empty_like(boxes)
    if clockwise:  # (x, y) -> (height - y, x)
        turned[:, 0], turned[:, 1], turned[:, 2], turned[:, 3] = height - boxes[:, 3], boxes[:, 0], \
            height - boxes[:, 1], boxes[:, 2]
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), turned
    # (x, y) -> (y, width - x)
    turned[:, 0], turned[:, 1], turned[:, 2], turned[:, 3] = boxes[:, 1], width - boxes[:, 2], boxes[:, 3], \
        width - boxes[:, 0]
    return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE), turned


def mosaic(pictures: list[tuple[np.ndarray, np.ndarray, np.ndarray]], size: tuple[int, int], rng, cfg):
    """Four pictures in a 2x2 grid around a random centre, each scaled to the cell; boxes follow."""
    out_h, out_w = size
    canvas = np.full((out_h, out_w, 3), 114, np.uint8)
    cx = int(rng.uniform(0.3, 0.7) * out_w)
    cy = int(rng.uniform(0.3, 0.7) * out_h)
    cells = [(0, 0, cx, cy), (cx, 0, out_w, cy), (0, cy, cx, out_h), (cx, cy, out_w, out_h)]
    all_boxes, all_labels = [], []
    for (image, boxes, labels), (x1, y1, x2, y2) in zip(pictures, cells):
        cw, ch = x2 - x1, y2 - y1
        if cw < 2 or ch < 2:
            continue
        h, w = image.shape[:2]
        scale = max(cw / w, ch / h)  # cover the cell, crop the rest
        resized = cv2.resize(image, (max(cw, int(round(w * scale))), max(ch, int(round(h * scale)))))
        ox = int(rng.uniform(0, resized.shape[1] - cw + 1))
        oy = int(rng.uniform(0, resized.shape[0] - ch + 1))
        canvas[y1:y2, x1:x2] = resized[oy:oy + ch, ox:ox + cw]
        moved = boxes * scale
        moved[:, 0::2] += x1 - ox
        moved[:, 1::2] += y1 - oy
        kept = np.ones(len(moved), bool)
        clipped = moved.copy()
        clipped[:, 0::2] = np.clip(moved[:, 0::2], x1, x2)
        clipped[:, 1::2] = np.clip(moved[:, 1::2], y1, y2)
        area = np.maximum((moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1]), 1e-6)
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        kept &= (visible >= cfg.min_visible * area) & (clipped[:, 2] - clipped[:, 0] >= 2) & \
            (clipped[:, 3] - clipped[:, 1] >= 2)
        all_boxes.append(clipped[kept])
        all_labels.append(labels[kept])
    return canvas, np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_labels).astype(np.int64)


def to_model_input(image: np.ndarray, boxes: np.ndarray, model_h: int, model_w: int, placement: str,
                   pad_value: int) -> tuple[np.ndarray, np.ndarray]:
    """The deployment letterbox: picture and boxes into model-input pixels."""
    geometry = letterbox_geometry(image.shape[1], image.shape[0], model_w, model_h, placement)
    return letterbox_image(image, geometry, pad_value), geometry.to_model(boxes) if len(boxes) else boxes
