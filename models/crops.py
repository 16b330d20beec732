"""Where a second-stage model looks: the crops cut around a first-stage object, the same in training, evaluation
and the daemon (one function, so the deployed crop is the crop the model was trained on).

An insulator string is 4-6 times longer than wide. Letterboxing the whole string into a square input would
shrink a defect (a missing cap, 15-20 px at the detector's input) to a few pixels, so a long box is cut into
square tiles along its long axis, overlapping by `overlap`, each as wide as the box's short side plus the margin
(the layout of Tao et al. 2018's cascade, and of the prototype measured in docs/cascade.md). A string hanging
diagonally has a box wide in both directions: `max_side` bounds the tile side, and such a box is covered by a
grid of tiles. A compact box (no longer than `max_aspect` times its width, within `max_side`) is one crop.

Coordinates are integer pixels of the full camera picture, x1 y1 inclusive, x2 y2 exclusive, with even x1, y1,
widths and heights: the alignment DVPP's crop keeps for YUV (left/top even, right/bottom odd in its inclusive
convention: Ascend/VisionSDK f156edc, mxBase/.../DvppWrapper/DvppWrapper.cpp CropRoiAlign with
DvppWrapperDataType.h CONVERT_TO_EVEN / CONVERT_TO_ODD, which round other corners down), so the daemon cuts
exactly these rectangles from the decoder's NV12 frame.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from models.detect import classwise_nms

ALIGN = 2


@dataclasses.dataclass(frozen=True)
class CropSettings:
    margin: float = 0.15  # added on every side, as a fraction of the box's short side
    max_aspect: float = 1.5  # a longer box is tiled
    overlap: float = 0.25  # tiles overlap by this fraction of their side
    min_side: int = 32  # pixels; a smaller crop is grown to this (a tiny box has no detail to find)
    # Largest tile side, as a fraction of the picture's shorter side (None: no limit). A diagonal string's box
    # is wide in both directions: without a limit its tiles would be as large as the box and a defect a few
    # pixels at the model's input; with it, the box is covered by a grid of tiles of at most this side.
    max_side: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin {self.margin}: expected 0..2 (a fraction of the box's short side)")
        if self.max_aspect < 1:
            raise ValueError(f"max_aspect {self.max_aspect}: expected >= 1")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap {self.overlap}: expected 0..1 (exclusive)")
        if self.min_side < ALIGN:
            raise ValueError(f"min_side {self.min_side}: expected >= {ALIGN}")
        if self.max_side is not None and not 0 < self.max_side <= 1:
            raise ValueError(f"max_side {self.max_side}: expected 0..1 (a fraction of the picture's shorter side)")


def _aligned(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Round outwards to even coordinates, keep inside the picture (whose even part is used)."""
    w_lim, h_lim = width // ALIGN * ALIGN, height // ALIGN * ALIGN
    ax1 = max(0, int(math.floor(x1 / ALIGN)) * ALIGN)
    ay1 = max(0, int(math.floor(y1 / ALIGN)) * ALIGN)
    ax2 = min(w_lim, int(math.ceil(x2 / ALIGN)) * ALIGN)
    ay2 = min(h_lim, int(math.ceil(y2 / ALIGN)) * ALIGN)
    return ax1, ay1, ax2, ay2


def _window(start: float, length: float, limit: int) -> tuple[float, float]:
    """[start, start + length) shifted to lie inside [0, limit) where it fits."""
    if length >= limit:
        return 0.0, float(limit)
    start = min(max(0.0, start), limit - length)
    return start, start + length


def _starts(centre: float, span: float, side: float, overlap: float) -> list[float]:
    """Tile starts covering [centre - span / 2, centre + span / 2) with tiles of `side` overlapping by at least
    `overlap`, spread evenly (the last one ends at the span's end; none hangs over it)."""
    first = centre - span / 2
    if span <= side:
        return [centre - side / 2]
    count = math.ceil((span - side) / (side * (1 - overlap)) - 1e-9) + 1
    stride = (span - side) / (count - 1)
    return [first + k * stride for k in range(count)]


def crop_regions(box, width: int, height: int, settings: CropSettings = CropSettings()) -> np.ndarray:
    """(K, 4) int64 crops (x1, y1, x2, y2) for one box (x1, y1, x2, y2) in a width x height picture."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    short, long_ = min(bw, bh), max(bw, bh)
    pad = settings.margin * short
    limit = settings.max_side * min(width, height) if settings.max_side else math.inf
    limit = max(limit, float(settings.min_side))
    span_x, span_y = max(bw + 2 * pad, float(settings.min_side)), max(bh + 2 * pad, float(settings.min_side))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if long_ <= settings.max_aspect * short and max(span_x, span_y) <= limit:
        sx, ex = _window(cx - span_x / 2, span_x, width)
        sy, ey = _window(cy - span_y / 2, span_y, height)
        regions = [_aligned(sx, sy, ex, ey, width, height)]
    else:
        side = min(max(short + 2 * pad, float(settings.min_side)), limit)
        regions = []
        for ty in _starts(cy, span_y, side, settings.overlap):
            for tx in _starts(cx, span_x, side, settings.overlap):
                sx, ex = _window(tx, side, width)
                sy, ey = _window(ty, side, height)
                regions.append(_aligned(sx, sy, ex, ey, width, height))
    out = np.asarray(regions, np.int64).reshape(-1, 4)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return np.unique(out[keep], axis=0) if keep.any() else out[:0]


def picture_crops(parents, width: int, height: int,
                  settings: CropSettings = CropSettings()) -> list[tuple[tuple[int, int, int, int], int]]:
    """The crops of one picture's parent boxes (given best first), each once, with the index of the first
    parent that asked for it: two near-identical parents (or overlapping strings) share tiles."""
    seen: dict = {}
    for index, parent in enumerate(parents):
        for rect in crop_regions(parent, width, height, settings):
            seen.setdefault(tuple(int(v) for v in rect), index)
    return list(seen.items())


def boxes_in_crop(boxes: np.ndarray, crop, min_visible: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) of the full picture seen in `crop`: (kept mask, boxes clipped and shifted to the crop).
    A box is kept when at least `min_visible` of its area lies inside; a box cut off more than that is not a
    target of this crop (the overlapping tile next to it sees it whole)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    cx1, cy1, cx2, cy2 = (float(v) for v in crop)
    clipped = np.stack([np.clip(boxes[:, 0], cx1, cx2), np.clip(boxes[:, 1], cy1, cy2),
                        np.clip(boxes[:, 2], cx1, cx2), np.clip(boxes[:, 3], cy1, cy2)], axis=1)
    inside = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = inside >= min_visible * np.maximum(area, 1e-6)
    local = clipped[kept] - np.asarray([cx1, cy1, cx1, cy1], np.float32)
    return kept, local


MERGE_IOU = 0.5  # one child seen by two overlapping tiles (or two overlapping parents) is one detection


def children_in_picture(rects, per_crop) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Second-stage detections of every crop of one picture, mapped to picture pixels and merged.

    rects: (K, 4) crops in picture pixels; per_crop: K tuples (boxes (N, 4) in crop pixels, scores (N,),
    class ids (N,)). Returns (boxes, scores, class ids, index of the crop each came from), best first; a child
    found by several overlapping crops is kept once, from the crop that scored it highest.
    """
    boxes, scores, classes, sources = [], [], [], []
    for k, (rect, (b, s, c)) in enumerate(zip(rects, per_crop)):
        if not len(s):
            continue
        x1, y1 = float(rect[0]), float(rect[1])
        boxes.append(np.asarray(b, np.float32).reshape(-1, 4) + np.asarray([x1, y1, x1, y1], np.float32))
        scores.append(np.asarray(s, np.float32))
        classes.append(np.asarray(c, np.int64))
        sources.append(np.full(len(s), k, np.int64))
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    boxes, scores, classes, sources = (np.concatenate(v) for v in (boxes, scores, classes, sources))
    keep = classwise_nms(boxes, scores, classes, MERGE_IOU)
    return boxes[keep], scores[keep], classes[keep], sources[keep]
