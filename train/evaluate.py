"""COCO-style evaluation with pycocotools: mAP@0.5, mAP@0.5:0.95, per-class AP@0.5, precision-recall curves,
and at a deployment's score thresholds the objects found, missed and the false alarms.

Predictions go through the deployment path: letterbox (models/letterbox.py), the decoded network, the daemon's
decoding (models/cascade.py `decode`: class-wise NMS, boxes mapped back to image pixels) at a low score
threshold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io

import cv2
import numpy as np

from models.cascade import Decoding, decode
from models.letterbox import preprocess_bgr as preprocess
from models.spec import ModelSpec
from train.datasets import Dataset

EVAL_SCORE = 0.001
EVAL_NMS_IOU = 0.6


def eval_decoding(spec: ModelSpec, max_detections: int = 300) -> Decoding:
    """Every candidate down to EVAL_SCORE (AP integrates over the whole precision-recall curve)."""
    return Decoding((EVAL_SCORE,) * spec.num_classes, EVAL_NMS_IOU, max_detections)


def curve_decoding(deployed: Decoding) -> Decoding:
    """A deployment's decoding (its NMS and cap) down to EVAL_SCORE: AP covers the whole curve, and the boxes at or
    above the deployment's own scores are exactly the ones it keeps (NMS suppresses a box only by a better one,
    and the cap keeps the best), so `at_threshold` counts what it reports."""
    return dataclasses.replace(deployed, thresholds=(EVAL_SCORE,) * len(deployed.thresholds))


def predict(run, dataset: Dataset, spec: ModelSpec, batch: int = 8, unreadable: list | None = None,
            on_outputs=None, decoding: Decoding | None = None) -> list[dict]:
    """`run(images NCHW float32) -> (boxes, scores)`; COCO result dicts for every sample. A picture that cannot
    be decoded is skipped and its index appended to `unreadable` (leave it out of the ground truth too).
    `on_outputs(index, picture, boxes, scores, geometry, decoded)`, when given, sees each picture's raw outputs
    and their decoding (picture boxes, scores, class ids: what the results hold), so the cascade plans its crops
    without running the model again and merges the first stage's own detections without decoding them again.
    `decoding`: eval_decoding's unless given (a deployment's: curve_decoding)."""
    decoding = decoding or eval_decoding(spec)
    results = []
    for start in range(0, len(dataset.samples), batch):
        chunk = []
        for index in range(start, min(start + batch, len(dataset.samples))):
            picture = cv2.imread(dataset.samples[index].image)
            if picture is None:
                if unreadable is None:
                    raise ValueError(f"{dataset.samples[index].image}: not a readable picture")
                unreadable.append(index)
            else:
                chunk.append((index, picture))
        if not chunk:
            continue
        tensors, geometries = zip(*(preprocess(picture, spec) for _, picture in chunk))
        boxes, scores = run(np.stack(tensors))
        for offset, ((index, picture), geometry) in enumerate(zip(chunk, geometries)):
            sample = dataset.samples[index]
            decoded = decode(boxes[offset], scores[offset], geometry, sample.width, sample.height, decoding)
            if on_outputs is not None:
                on_outputs(index, picture, boxes[offset], scores[offset], geometry, decoded)
            results += coco_results(index, *decoded)
    return results


def coco_results(image_id: int, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> list[dict]:
    """One picture's detections (picture pixels, x1 y1 x2 y2) as COCO result dicts."""
    return [{"image_id": image_id, "category_id": int(cls) + 1,
             "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
             "score": float(score)} for box, score, cls in zip(boxes, scores, class_ids)]


def coco_ground_truth(dataset: Dataset, leave_out=()) -> dict:
    images, annotations = [], []
    for image_id, sample in enumerate(dataset.samples):
        if image_id in leave_out:
            continue
        images.append({"id": image_id, "width": sample.width, "height": sample.height, "file_name": sample.image})
        for box, label in zip(sample.boxes, sample.labels):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(dataset.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_evaluate(dataset: Dataset, results: list[dict], leave_out=(), thresholds=None, bootstrap: int = 0,
                  against: list[dict] | None = None) -> dict:
    """leave_out: sample indices not evaluated (pictures that could not be read). thresholds: a deployment's
    score per class; the figures at them are added as `at_threshold` (`at_thresholds`). bootstrap: that many
    resamplings of the pictures give each class's AP an interval (`bootstrap_intervals`). against: another
    model's results on the same pictures: its AP and, with bootstrap, the difference's interval on the same
    resamplings (`against`). Without a detection every AP is 0 (no intervals: nothing to resample)."""
    if not results:
        empty = {"mAP50": 0.0, "mAP50_95": 0.0, "per_class_AP50": {n: 0.0 for n in dataset.class_names},
                 "per_class_AP50_95": {n: 0.0 for n in dataset.class_names},
                 "detections": 0, "pr_curves": {n: [] for n in dataset.class_names}}
        if thresholds is not None:
            boxes = [a["category_id"] - 1 for a in coco_ground_truth(dataset, set(leave_out))["annotations"]]
            empty["at_threshold"] = {name: operating_point(thresholds[k], 0, 0, boxes.count(k))
                                     for k, name in enumerate(dataset.class_names)}
        return empty
    evaluator = coco_evaluator(dataset, results, leave_out)
    precision = evaluator.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)
    per_class, per_class_50_95 = class_ap(precision, dataset.class_names)
    metrics = {"mAP50": float(evaluator.stats[1]), "mAP50_95": float(evaluator.stats[0]),
               "per_class_AP50": per_class, "per_class_AP50_95": per_class_50_95, "detections": len(results),
               "pr_curves": {name: precision[0, :, k, 0, -1].tolist() for k, name in enumerate(dataset.class_names)}}
    if thresholds is not None:
        metrics["at_threshold"] = at_thresholds(evaluator, dataset.class_names, thresholds)
    draws = bootstrap_draws(evaluator, dataset, bootstrap) if bootstrap else None
    if draws is not None:
        metrics["bootstrap"] = bootstrap_intervals(dataset, draws)
    if against is not None:
        metrics["against"] = compare_against(evaluator, dataset, against, leave_out, draws)
    return metrics


def compare_against(evaluator, dataset: Dataset, against: list[dict], leave_out=(), draws=None,
                    interval: float = 0.9) -> dict:
    """The other model's AP per class on the same pictures and the difference (this model's minus the other's);
    with this model's `draws` (bootstrap_draws), the other's drawn on the same resamplings (the same pictures
    for both models in each round: a paired comparison) and the central `interval` of the difference."""
    mine = class_ap(evaluator.eval["precision"], dataset.class_names)
    theirs = coco_evaluator(dataset, against, leave_out) if against else None
    other = (class_ap(theirs.eval["precision"], dataset.class_names) if theirs is not None else
             ({n: 0.0 for n in dataset.class_names},) * 2)
    paired = theirs is not None and draws is not None
    other_draws = bootstrap_draws(theirs, dataset, len(draws[0])) if paired else None
    report: dict = {}
    for n, (key, difference) in enumerate((("per_class_AP50", "difference_AP50"),
                                           ("per_class_AP50_95", "difference_AP50_95"))):
        report[key] = other[n]
        report[difference] = {name: {"difference": round(mine[n][name] - other[n][name], 4),
                                     "interval": _central(draws[n][:, k] - other_draws[n][:, k], interval)
                                     if paired else None}
                              for k, name in enumerate(dataset.class_names)}
    return report


def coco_evaluator(dataset: Dataset, results: list[dict], leave_out=()):
    """pycocotools' COCOeval of `results` (not empty) against `dataset`, evaluated, accumulated, summarised."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(dataset, set(leave_out))
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def class_ap(precision: np.ndarray, class_names, absent: float = 0.0) -> tuple[dict, dict]:
    """AP@0.5 and AP@0.5:0.95 per class from COCOeval's precision array; `absent` for a class without objects."""
    ap50, ap50_95 = {}, {}
    for k, name in enumerate(class_names):
        p = precision[0, :, k, 0, -1]
        ap50[name] = float(p[p > -1].mean()) if (p > -1).any() else absent
        p = precision[:, :, k, 0, -1]  # every IoU threshold 0.5:0.95
        ap50_95[name] = float(p[p > -1].mean()) if (p > -1).any() else absent
    return ap50, ap50_95


def resampled_precision(evaluator, picks) -> np.ndarray:
    """COCOeval's precision array over the pictures at positions `picks` of its imgIds, repeats counted as
    other pictures: each picture's matching (evaluator.evalImgs, laid out class, area range, picture) is reused
    and only `accumulate` runs again."""
    import copy

    classes, areas, pictures = (len(evaluator._paramsEval.catIds), len(evaluator._paramsEval.areaRng),
                                len(evaluator._paramsEval.imgIds))
    again = copy.copy(evaluator)
    again.params, again._paramsEval = copy.copy(evaluator.params), copy.copy(evaluator._paramsEval)
    again.params.imgIds = again._paramsEval.imgIds = list(range(len(picks)))
    again.evalImgs = [evaluator.evalImgs[(k * areas + a) * pictures + int(i)]
                      for k in range(classes) for a in range(areas) for i in picks]
    with contextlib.redirect_stdout(io.StringIO()):
        again.accumulate()
    return again.eval["precision"]


def bootstrap_draws(evaluator, dataset: Dataset, rounds: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """AP@0.5 and AP@0.5:0.95, (rounds, classes) each, over the pictures resampled with replacement `rounds`
    times, within each source (every source keeps its count); NaN where a class has no object in a resample.
    The same pictures, seed and rounds give the same resamples whatever the detections (a paired comparison)."""
    positions: dict[str, list[int]] = {}
    for n, image_id in enumerate(evaluator._paramsEval.imgIds):
        positions.setdefault(dataset.samples[image_id].source, []).append(n)
    rng = np.random.default_rng(seed)
    ap50, ap50_95 = np.zeros((rounds, len(dataset.class_names))), np.zeros((rounds, len(dataset.class_names)))
    for r in range(rounds):
        picks = np.concatenate([rng.choice(members, len(members)) for members in positions.values()])
        first, second = class_ap(resampled_precision(evaluator, picks), dataset.class_names, absent=np.nan)
        ap50[r], ap50_95[r] = list(first.values()), list(second.values())
    return ap50, ap50_95


def _central(values: np.ndarray, interval: float) -> list[float] | None:
    if np.isnan(values).all():
        return None
    tail = (1 - interval) / 2 * 100
    return [round(float(np.nanpercentile(values, tail)), 4), round(float(np.nanpercentile(values, 100 - tail)), 4)]


def bootstrap_intervals(dataset: Dataset, draws, interval: float = 0.9) -> dict:
    """How much each class's AP would move on other pictures like these: the central `interval` of its APs over
    the resamplings of `draws` (bootstrap_draws'; a class with no object in a resample is left out of that
    round)."""
    report: dict = {"rounds": len(draws[0]), "interval": interval}
    for key, values in zip(("per_class_AP50", "per_class_AP50_95"), draws):
        report[key] = {name: _central(values[:, k], interval) for k, name in enumerate(dataset.class_names)}
    return report


def at_thresholds(evaluator, class_names, thresholds) -> dict:
    """What a deployment at these scores reports (one per class), counted at IoU 0.5 over pictures of every
    size as AP@0.5 is: the objects found, the false alarms among the detections kept, the objects missed."""
    iou50 = 0  # params.iouThrs[0] is 0.5
    every_area = list(evaluator.params.areaRng[0])
    counts = np.zeros((len(class_names), 3), np.int64)  # per class: hits, false alarms, objects
    for picture in evaluator.evalImgs:  # one per class, area range and picture
        if picture is None or list(picture["aRng"]) != every_area:
            continue
        k = picture["category_id"] - 1
        # dtMatches and dtIgnore: (IoU thresholds, detections), best score first, at most maxDets[-1].
        kept = (np.asarray(picture["dtScores"]) >= thresholds[k]) & ~picture["dtIgnore"][iou50].astype(bool)
        matched = picture["dtMatches"][iou50] > 0
        objects = ~np.asarray(picture["gtIgnore"], bool)
        counts[k] += [(kept & matched).sum(), (kept & ~matched).sum(), objects.sum()]
    return {name: operating_point(thresholds[k], *map(int, counts[k])) for k, name in enumerate(class_names)}


def operating_point(score: float, hits: int, false_alarms: int, objects: int) -> dict:
    return {"score": float(score), "found": hits, "false_alarms": false_alarms, "missed": objects - hits,
            "precision": hits / (hits + false_alarms) if hits + false_alarms else None,
            "recall": hits / objects if objects else None}


def evaluate_sources(dataset: Dataset, results: list[dict], leave_out=(), thresholds=None, bootstrap: int = 0,
                     against: list[dict] | None = None) -> dict:
    """coco_evaluate over every picture and, when the pictures come from several sources (a training's
    `sources`), over each source's pictures alone (`per_source`: no curves)."""
    metrics = coco_evaluate(dataset, results, leave_out, thresholds, bootstrap, against)
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(dataset.samples):
        groups.setdefault(sample.source, []).append(index)
    if len(groups) > 1:
        metrics["per_source"] = {}
        for name, indices in groups.items():
            position = {old: new for new, old in enumerate(indices)}
            subset = Dataset([dataset.samples[i] for i in indices], dataset.class_names, [])
            inside = lambda detections: [dict(r, image_id=position[r["image_id"]]) for r in detections
                                         if r["image_id"] in position]
            found = coco_evaluate(subset, inside(results), {position[i] for i in leave_out if i in position},
                                  thresholds, bootstrap, None if against is None else inside(against))
            found.pop("pr_curves", None)
            # A class this source never shows has no AP here (not 0: its mAP leaves it out too).
            shown = {dataset.class_names[int(label)] for sample in subset.samples for label in sample.labels}
            blocks = [found, found.get("bootstrap", {}), found.get("against", {})]
            for block in blocks:
                for key in ("per_class_AP50", "per_class_AP50_95", "at_threshold", "difference_AP50",
                            "difference_AP50_95"):
                    if key in block:
                        block[key] = {k: v for k, v in block[key].items() if k in shown}
            metrics["per_source"][name] = found | {"images": len(indices)}
    return metrics


def plot_pr(metrics: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in metrics["pr_curves"].items():
        curve = np.asarray(curve)
        ax.plot(recall[curve > -1], curve[curve > -1],
                label=f"{name} (AP50 {metrics['per_class_AP50'][name]:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"PR at IoU 0.5, mAP50 {metrics['mAP50']:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
