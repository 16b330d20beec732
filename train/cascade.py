"""End-to-end evaluation of a two-stage cascade on full pictures (docs/cascade.md).

Stage 1 finds the parents (insulators) on the whole picture; every parent above `parent_score` (the daemon's
stage-1 threshold, best first, at most `max_crops` per picture) is cut into the crops the second stage was
trained on (models/crops.py, settings from its manifest), each crop from the full picture; stage 2's boxes are
mapped back to picture pixels and merged across overlapping tiles and parents (class-wise NMS). The children's
AP is then computed with pycocotools against the full-picture annotations, beside stage 1's own figures on the
same pictures (its own child class, when it has one, is the single-stage baseline).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from models.crops import children_in_picture, picture_crops
from models.detect import detect
from models.letterbox import preprocess_bgr
from models.spec import ModelSpec
from train.datasets import Dataset
from train.evaluate import EVAL_NMS_IOU, EVAL_SCORE, coco_evaluate, predict

@dataclasses.dataclass(frozen=True)
class CascadeSettings:
    parent_score: float = 0.25
    max_crops: int = 32  # as the daemon's stage2.max_crops default


def parent_boxes(results: list[dict], parent_ids: set, settings: CascadeSettings) -> dict:
    """Stage 1's parents above the threshold per picture (image id -> (N, 4) x1 y1 x2 y2, best first), from
    one pass over its results."""
    by_image: dict = {}
    for r in results:
        if r["category_id"] - 1 in parent_ids and r["score"] >= settings.parent_score:
            by_image.setdefault(r["image_id"], []).append(r)
    return {image_id: np.asarray([[x, y, x + w, y + h] for x, y, w, h in
                                  (r["bbox"] for r in sorted(mine, key=lambda r: -r["score"]))], np.float32)
            for image_id, mine in by_image.items()}


def children_of_picture(image: np.ndarray, parents: np.ndarray, run2, spec2: ModelSpec,
                        settings: CascadeSettings, batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Stage 2 on the crops of one picture: (boxes in picture pixels, scores, class ids, crops run)."""
    height, width = image.shape[:2]
    crops = [rect for rect, _ in picture_crops(parents, width, height, spec2.crop_settings)][:settings.max_crops]
    thresholds = np.full(spec2.num_classes, EVAL_SCORE, np.float32)
    per_crop = []
    for start in range(0, len(crops), batch):
        chunk = crops[start:start + batch]
        tensors, geometries = zip(*(preprocess_bgr(image[y1:y2, x1:x2], spec2) for x1, y1, x2, y2 in chunk))
        out_boxes, out_scores = run2(np.stack(tensors))
        for k, ((x1, y1, x2, y2), geometry) in enumerate(zip(chunk, geometries)):
            kept, kept_scores, class_ids = detect(out_boxes[k], out_scores[k], thresholds, EVAL_NMS_IOU, 100)
            per_crop.append((geometry.to_camera(kept, x2 - x1, y2 - y1), kept_scores, class_ids))
    boxes, scores, classes, _ = children_in_picture(crops, per_crop)
    return boxes, scores, classes, len(crops)


def evaluate_cascade(dataset: Dataset, run1, spec1: ModelSpec, run2, spec2: ModelSpec,
                     settings: CascadeSettings = CascadeSettings()) -> dict:
    """`dataset`: full pictures annotated with stage 1's classes and stage 2's (any order). Returns stage 1's
    metrics on its classes and the cascade's on stage 2's, both on these pictures."""
    if spec2.crops is None:
        raise ValueError("the second model's manifest has no `crops` (not trained as a second stage)")
    missing = [p for p in spec2.crops["parents"] if p not in spec1.class_names]
    if missing:
        raise ValueError(f"stage 2 runs on {missing}, which stage 1 {list(spec1.class_names)} does not detect")
    # Stage 1 on its own classes (a data set relabelled to them), exactly as `inspector eval` measures it.
    stage1_set = relabel(dataset, spec1.class_names)
    stage1_results = predict(run1, stage1_set, spec1)
    stage1 = coco_evaluate(stage1_set, stage1_results)
    parent_ids = {spec1.class_names.index(p) for p in spec2.crops["parents"]}
    children_set = relabel(dataset, spec2.class_names)
    parents_by_image = parent_boxes(stage1_results, parent_ids, settings)
    results, crops_run = [], 0
    for image_id, sample in enumerate(dataset.samples):
        parents = parents_by_image.get(image_id, np.zeros((0, 4), np.float32))
        image = cv2.imread(sample.image)
        if image is None:
            raise FileNotFoundError(f"{sample.image}: cannot read image")
        boxes, scores, classes, count = children_of_picture(image, parents, run2, spec2, settings)
        crops_run += count
        for box, score, cls in zip(boxes, scores, classes):
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            results.append({"image_id": image_id, "category_id": int(cls) + 1, "score": float(score),
                            "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
    cascade = coco_evaluate(children_set, results)
    for metrics in (stage1, cascade):
        metrics.pop("pr_curves", None)
    return {"pictures": len(dataset.samples), "crops_per_picture": crops_run / max(1, len(dataset.samples)),
            "parent_score": settings.parent_score, "stage1": stage1, "cascade": cascade}


def relabel(dataset: Dataset, class_names) -> Dataset:
    """The same pictures with only the objects of `class_names`, indexed in that order."""
    class_names = tuple(class_names)
    index = {dataset.class_names.index(n): k for k, n in enumerate(class_names) if n in dataset.class_names}
    samples = []
    for sample in dataset.samples:
        keep = np.isin(sample.labels, list(index))
        samples.append(dataclasses.replace(sample, boxes=sample.boxes[keep],
                                           labels=np.asarray([index[int(l)] for l in sample.labels[keep]], np.int64)))
    return Dataset(samples, class_names, [])
