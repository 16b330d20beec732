"""One cascade (docs/cascade.md): a frame's first-stage outputs decoded once, the second stage's crops planned
around the decoded objects (each crop with the index of its parent), the children mapped back to the picture
with that index.

Pure numpy. The daemon's devices call `decode` and `plan_crops` and then only cut pixels and run models; the
host calls `children`; `inspector eval` calls all three with the rule a daemon config deploys, so it measures
the cascade the daemon runs. Nothing is decoded twice and no child is matched to its parent after the fact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from models.crops import children_in_picture, picture_crops
from models.detect import classwise_nms, detect
from models.letterbox import LetterboxGeometry, letterbox_geometry
from models.spec import ModelSpec


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How one model's outputs become detections: per-class score thresholds, class-wise NMS, a cap."""

    thresholds: tuple[float, ...]  # one per class of the model
    nms_iou: float
    max_detections: int


@dataclasses.dataclass(frozen=True)
class CascadeRule:
    """Which first-stage objects are cropped and how both stages are decoded (the daemon's `thresholds` and
    `stage2` keys, pipeline/stage2.py `cascade_rule`)."""

    parent_ids: tuple[int, ...]  # first-stage classes whose objects are cropped
    stage1: Decoding
    stage2: Decoding
    max_crops: int  # per frame, best parents first
    # (first-model class, second-model class) pairs of the classes both models detect whose first-stage
    # detections are reported beside the children (`merge_first`); empty: the second model's classes come from
    # the second model only.
    merged: tuple[tuple[int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class CropPlan:
    rect: tuple[int, int, int, int]  # picture pixels, x1 y1 x2 y2
    parent: int  # index of the object it was cut around in the frame's decoded first-stage detections
    geometry: LetterboxGeometry  # the crop letterboxed into the second model's input


def decode(boxes_model: np.ndarray, scores: np.ndarray, geometry: LetterboxGeometry, width: int, height: int,
           decoding: Decoding) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes in picture pixels, scores, class ids) of one frame or crop, best first."""
    thresholds = np.asarray(decoding.thresholds, np.float32)
    if not (scores >= thresholds).any():
        # Most crops (and quiet frames): nothing to decode. 2 us instead of 30 for the full path, ten times a
        # frame with a second stage.
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes, kept_scores, class_ids = detect(boxes_model, scores, thresholds, decoding.nms_iou,
                                           decoding.max_detections)
    picture = geometry.to_camera(boxes, width, height)
    # A box entirely in the letterbox padding clips to nothing in the picture: not a detection.
    visible = (picture[:, 2] > picture[:, 0]) & (picture[:, 3] > picture[:, 1])
    return (picture[visible].astype(np.float32), kept_scores[visible].astype(np.float32),
            class_ids[visible].astype(np.int64))


def plan_crops(boxes: np.ndarray, class_ids: np.ndarray, width: int, height: int, rule: CascadeRule,
               spec2: ModelSpec) -> tuple[list[CropPlan], int]:
    """The crops of one frame around its decoded first-stage objects of the parent classes (given best first,
    as `decode` returns them), where the second model was trained to look (its manifest's crop settings);
    at most `rule.max_crops`. Returns (plans, crops left out)."""
    mine = np.flatnonzero(np.isin(class_ids, rule.parent_ids))
    rects = picture_crops(np.asarray(boxes, np.float32)[mine], width, height, spec2.crop_settings)
    w2, h2 = spec2.input_width, spec2.input_height
    plans = [CropPlan(tuple(int(v) for v in rect), int(mine[parent]),
                      letterbox_geometry(rect[2] - rect[0], rect[3] - rect[1], w2, h2, spec2.letterbox.placement))
             for rect, parent in rects[:rule.max_crops]]
    return plans, max(0, len(rects) - rule.max_crops)


def children(plans: list[CropPlan], outputs, decoding: Decoding) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """The second stage's detections of one frame: `outputs` holds each plan's (boxes, scores) tensors. Returns
    (boxes in picture pixels, scores, class ids, parent index), best first, a child seen by overlapping crops
    once, at most `decoding.max_detections`."""
    per_crop = []
    for plan, (boxes_model, scores) in zip(plans, outputs):
        x1, y1, x2, y2 = plan.rect
        # In crop pixels (children_in_picture shifts them to the picture).
        per_crop.append(decode(boxes_model, scores, plan.geometry, x2 - x1, y2 - y1, decoding))
    boxes, scores, class_ids, crop_index = children_in_picture([p.rect for p in plans], per_crop)
    parents = np.asarray([plans[k].parent for k in crop_index], np.int64).reshape(-1)
    keep = slice(0, decoding.max_detections)
    return boxes[keep], scores[keep], class_ids[keep], parents[keep]


def shared_pairs(spec1: ModelSpec, spec2: ModelSpec) -> tuple[tuple[int, int], ...]:
    """(first-model class, second-model class) of every class both models detect: `CascadeRule.merged` when the
    rule merges them."""
    return tuple((spec1.class_names.index(n), k) for k, n in enumerate(spec2.class_names)
                 if n in spec1.class_names)


def merge_first(found: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], first_boxes: np.ndarray,
                first_scores: np.ndarray, first_ids: np.ndarray, rule: CascadeRule
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The children of one frame (`children`'s four arrays, second-model classes) with the first stage's own
    detections of the classes both models detect (`rule.merged`; picture pixels, first-model classes), those
    above the second model's threshold of their class, with parent -1: one class-wise NMS of the second
    model's over both, best first, at most its `max_detections`. A defect outside every crop, or one the second
    model missed in its crop, is still reported; one both models found is reported once, with the better
    score."""
    boxes, scores, class_ids, parents = found
    if not rule.merged:
        return found
    first_ids = np.asarray(first_ids, np.int64)
    to_second = dict(rule.merged)
    thresholds = np.asarray(rule.stage2.thresholds, np.float32)
    mapped = np.asarray([to_second.get(int(c), -1) for c in first_ids], np.int64)
    take = mapped >= 0
    take[take] = np.asarray(first_scores, np.float32)[take] >= thresholds[mapped[take]]
    if not take.any():
        return found
    boxes = np.concatenate([boxes, np.asarray(first_boxes, np.float32)[take]]).astype(np.float32)
    scores = np.concatenate([scores, np.asarray(first_scores, np.float32)[take]]).astype(np.float32)
    class_ids = np.concatenate([class_ids, mapped[take]]).astype(np.int64)
    parents = np.concatenate([parents, np.full(int(take.sum()), -1, np.int64)]).astype(np.int64)
    keep = classwise_nms(boxes, scores, class_ids, rule.stage2.nms_iou)[:rule.stage2.max_detections]
    return boxes[keep], scores[keep], class_ids[keep], parents[keep]
