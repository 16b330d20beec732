"""Anchor assignment (numpy, in the data pipeline): every ground-truth box goes to each anchor whose shape IoU
with it exceeds `anchor_iou` (0.213 as in YOLOv4's cfg and the model zoo), and always to its best anchor;
the box lands in the grid cell holding its centre on the head that owns the anchor.

Per head the target is (H, W, A, 6 + C): x1 y1 x2 y2 (model pixels), objectness, box weight, then the class
targets with optional label smoothing.
"""

from __future__ import annotations

import numpy as np

from models.spec import ModelSpec

MAX_BOXES = 64


def shape_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N, 2) box sizes against (M, 2) anchors, both centred: (N, M)."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
    return inter / np.maximum(union, 1e-9)


def build_targets(boxes: np.ndarray, labels: np.ndarray, spec: ModelSpec, anchor_iou: float = 0.213,
                  label_smoothing: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """boxes (N, 4) x1 y1 x2 y2 in model pixels -> (per-head targets, gt boxes padded to (MAX_BOXES, 4))."""
    classes = spec.num_classes
    anchors = np.asarray(spec.anchors, np.float32)
    targets = [np.zeros((h.grid[0], h.grid[1], len(h.mask), 6 + classes), np.float32) for h in spec.heads]
    gt = np.zeros((MAX_BOXES, 4), np.float32)
    boxes = boxes[:MAX_BOXES]
    labels = labels[:MAX_BOXES]
    gt[:len(boxes)] = boxes
    if not len(boxes):
        return targets, gt
    wh = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    ious = shape_iou(wh, anchors)
    best = ious.argmax(1)
    area_fraction = wh[:, 0] * wh[:, 1] / float(spec.input_width * spec.input_height)
    positive, negative = 1.0 - label_smoothing / 2, label_smoothing / 2
    for n in range(len(boxes)):
        chosen = set(np.nonzero(ious[n] > anchor_iou)[0].tolist()) | {int(best[n])}
        for head_index, head in enumerate(spec.heads):
            for a, anchor_index in enumerate(head.mask):
                if anchor_index not in chosen:
                    continue
                gx = min(int(centre[n, 0] // head.stride), head.grid[1] - 1)
                gy = min(int(centre[n, 1] // head.stride), head.grid[0] - 1)
                cell = targets[head_index][gy, gx, a]
                cell[:4] = boxes[n]
                cell[4] = 1.0
                cell[5] = 2.0 - area_fraction[n]  # small boxes weigh more, as in YOLOv3/v4
                cell[6:] = np.maximum(cell[6:], negative)
                cell[6 + int(labels[n])] = positive
    return targets, gt
