"""Anchors fitted to a data set's boxes: k-means over (w, h) with 1 - IoU as the distance, as Darknet's
`calc_anchors` and YOLOv2/v3 do (boxes compared as if centred on one point, so only shape and size count).

Boxes are measured in model-input pixels, i.e. after the letterbox the daemon and the trainer apply (the picture's
longer side scaled to the input size). `fitness` says how well a set of anchors covers the boxes: the mean IoU
of each box with its best anchor, and the share of boxes whose best IoU is above the trainer's assignment
threshold (loss.anchor_iou): a box no anchor matches that well is learnt through its best anchor only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from models.letterbox import letterbox_geometry


def shape_iou(sizes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of (N, 2) box sizes with (K, 2) anchor sizes, all centred on one point: (N, K)."""
    inter = np.minimum(sizes[:, None, 0], anchors[None, :, 0]) * np.minimum(sizes[:, None, 1], anchors[None, :, 1])
    union = sizes[:, None].prod(-1) + anchors[None].prod(-1) - inter
    return inter / union


@dataclasses.dataclass(frozen=True)
class Fitness:
    mean_iou: float  # each box with its best anchor
    above_threshold: float  # share of boxes whose best anchor's IoU exceeds the threshold

    def to_dict(self) -> dict:
        return {"mean_iou": round(self.mean_iou, 4), "above_threshold": round(self.above_threshold, 4)}


def fitness(sizes: np.ndarray, anchors, threshold: float) -> Fitness:
    best = shape_iou(np.asarray(sizes, np.float64), np.asarray(anchors, np.float64)).max(1)
    return Fitness(float(best.mean()), float((best > threshold).mean()))


def fit_anchors(sizes: np.ndarray, count: int, seed: int = 0, iterations: int = 300) -> np.ndarray:
    """`count` anchors (K, 2), sorted by area, fitted to (N, 2) box sizes by k-means with 1 - IoU: started from
    k-means++ seeds, ten restarts, the set with the best mean IoU kept."""
    sizes = np.asarray(sizes, np.float64)
    if len(sizes) < count:
        raise ValueError(f"{len(sizes)} boxes cannot fit {count} anchors")
    rng = np.random.default_rng(seed)
    best, best_score = None, -1.0
    for _ in range(10):
        centres = sizes[[rng.integers(len(sizes))]]
        while len(centres) < count:  # k-means++: the farther (1 - IoU, squared) from the centres, the likelier
            distance = (1 - shape_iou(sizes, centres).max(1)) ** 2
            centres = np.vstack([centres, sizes[rng.choice(len(sizes), p=distance / distance.sum())]])
        for _ in range(iterations):
            nearest = shape_iou(sizes, centres).argmax(1)
            moved = np.array([np.median(sizes[nearest == k], axis=0) if (nearest == k).any() else centres[k]
                              for k in range(count)])
            if np.allclose(moved, centres):
                break
            centres = moved
        score = shape_iou(sizes, centres).max(1).mean()
        if score > best_score:
            best, best_score = centres, score
    return best[np.argsort(best.prod(1))]


def letterboxed_sizes(samples, input_size: int) -> np.ndarray:
    """(N, 2) widths and heights of every box of `samples` (train/datasets.py Sample) in model-input pixels,
    scaled by the letterbox the trainer and the daemon apply (models/letterbox.py)."""
    sizes = []
    for sample in samples:
        geometry = letterbox_geometry(sample.width, sample.height, input_size, input_size)
        boxes = np.asarray(sample.boxes, np.float64).reshape(-1, 4)
        sizes.append(np.stack([(boxes[:, 2] - boxes[:, 0]) * geometry.scale_x,
                               (boxes[:, 3] - boxes[:, 1]) * geometry.scale_y], 1))
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def box_labels(samples) -> np.ndarray:
    """(N,) class index of every box of `samples`, in the order of letterboxed_sizes."""
    labels = [np.asarray(sample.labels, np.int64).reshape(-1) for sample in samples]
    return np.concatenate(labels) if labels else np.zeros(0, np.int64)


def fitness_per_class(sizes: np.ndarray, labels: np.ndarray, class_names, anchors, threshold: float) -> dict:
    """{class: boxes and fitness} for each class with boxes: a mean over all boxes hides a class the anchors
    miss when others are many."""
    return {name: {"boxes": int((labels == k).sum()), **fitness(sizes[labels == k], anchors, threshold).to_dict()}
            for k, name in enumerate(class_names) if (labels == k).any()}


def anchors_for_cfg(sizes: np.ndarray, cfg, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """All of a cfg's anchor slots, fitted: as many anchors as its heads use (yolov4-tiny's masks 1,2,3 and 3,4,5
    leave slot 0 unused), sorted by area into the used slots, an unused slot given the smallest. Returns (the
    full list, the used slots)."""
    used = sorted({index for head in cfg.heads for index in head.mask})
    fitted = fit_anchors(sizes, len(used), seed)
    full = np.repeat(fitted[:1], len(cfg.anchors), axis=0)
    full[used] = fitted
    return full, used
