"""COCO evaluation's bootstrap: each class's AP with the interval it moves in when the pictures are resampled."""

import numpy as np
import pytest

from train.datasets import Dataset, Sample
from train.evaluate import class_ap, coco_evaluate, coco_evaluator, resampled_precision

pytestmark = pytest.mark.unit

pytest.importorskip("pycocotools")

CLASSES = ("insulator", "broken")


def pictures(count: int = 8, seed: int = 0):
    """Pictures with an insulator each and a broken shed on every other one; detections that find most of them
    at varied scores, miss some, and add false alarms: APs strictly between 0 and 1."""
    rng = np.random.default_rng(seed)
    samples, results = [], []
    for i in range(count):
        boxes = [[10, 10, 110, 210]] + ([[40, 50, 70, 80]] if i % 2 else [])
        samples.append(Sample(f"p{i}.jpg", 320, 240, np.asarray(boxes, np.float32), np.arange(len(boxes)),
                              source="a" if i < count // 2 else "b"))
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            if rng.random() < 0.75:
                shift = rng.uniform(-4, 4)
                results.append({"image_id": i, "category_id": k + 1, "bbox": [x1 + shift, y1, x2 - x1, y2 - y1],
                                "score": float(rng.uniform(0.2, 0.9))})
        results.append({"image_id": i, "category_id": 2, "bbox": [200, 100, 30, 30],
                        "score": float(rng.uniform(0.1, 0.8))})  # a false alarm on every picture
    return Dataset(samples, CLASSES, []), results


def test_a_resample_measures_what_pycocotools_measures_on_the_repeated_pictures():
    dataset, results = pictures()
    picks = [0, 0, 3, 5, 5, 5, 6, 1]
    again = class_ap(resampled_precision(coco_evaluator(dataset, results), picks), CLASSES)
    # The same pictures written out again, each repeat a picture of its own, evaluated from scratch.
    repeated = Dataset([dataset.samples[i] for i in picks], CLASSES, [])
    repeated_results = [dict(r, image_id=n) for n, i in enumerate(picks) for r in results if r["image_id"] == i]
    scratch = coco_evaluate(repeated, repeated_results)
    assert 0 < scratch["per_class_AP50"]["broken"] < 1
    assert again[0] == pytest.approx(scratch["per_class_AP50"])
    assert again[1] == pytest.approx(scratch["per_class_AP50_95"])
    assert again[0] != pytest.approx(coco_evaluate(dataset, results)["per_class_AP50"])  # another set of pictures


def test_bootstrap_intervals_hold_the_figure_and_narrow_with_more_pictures():
    small, small_results = pictures(8)
    large, large_results = pictures(64)
    report = coco_evaluate(small, small_results, bootstrap=300)
    boot = report["bootstrap"]
    assert (boot["rounds"], boot["interval"]) == (300, 0.9)
    for key in ("per_class_AP50", "per_class_AP50_95"):
        for name in CLASSES:
            low, high = boot[key][name]
            assert low <= report[key][name] <= high
    assert boot == coco_evaluate(small, small_results, bootstrap=300)["bootstrap"]  # seeded
    width = lambda b: b["per_class_AP50"]["broken"][1] - b["per_class_AP50"]["broken"][0]
    assert width(coco_evaluate(large, large_results, bootstrap=300)["bootstrap"]) < width(boot) / 1.5


def test_every_source_is_resampled_on_its_own():
    """Source b's pictures have no broken shed: per source, the class b lacks has no interval there; over both,
    every round keeps a's four pictures' count, so broken always has objects to measure."""
    import dataclasses

    from train.evaluate import evaluate_sources

    dataset, results = pictures(8)
    dataset.samples[4:] = [dataclasses.replace(s, boxes=s.boxes[s.labels == 0], labels=s.labels[s.labels == 0])
                           for s in dataset.samples[4:]]
    report = evaluate_sources(dataset, results, bootstrap=200)
    assert set(report["per_source"]["b"]["bootstrap"]["per_class_AP50"]) == {"insulator"}
    assert set(report["per_source"]["a"]["bootstrap"]["per_class_AP50"]) == {"insulator", "broken"}
    assert report["bootstrap"]["per_class_AP50"]["broken"] is not None


def test_against_another_model_the_difference_is_paired():
    """Two models on the same pictures: the difference of their APs, and its interval over resamples that show
    both the same pictures. A model against itself differs by exactly 0 in every resample; against a model
    that loses the insulators on two pictures, by less than 0 in every resample that draws them."""
    dataset, results = pictures(8)
    itself = coco_evaluate(dataset, results, bootstrap=200, against=results)["against"]
    assert itself["per_class_AP50"] == coco_evaluate(dataset, results)["per_class_AP50"]
    assert all(v == {"difference": 0.0, "interval": [0.0, 0.0]} for v in itself["difference_AP50"].values())
    worse = [r for r in results if not (r["category_id"] == 1 and r["image_id"] in (0, 1))]
    report = coco_evaluate(dataset, worse, bootstrap=200, against=results)
    difference = report["against"]["difference_AP50"]["insulator"]
    assert difference["difference"] == pytest.approx(report["per_class_AP50"]["insulator"] -
                                                     report["against"]["per_class_AP50"]["insulator"], abs=1e-4)
    assert difference["difference"] < 0 and difference["interval"][1] <= 0 < -difference["interval"][0]
    # Unpaired, the two models' own intervals overlap: the pairing is what resolves the difference.
    mine = report["bootstrap"]["per_class_AP50"]["insulator"]
    theirs = coco_evaluate(dataset, results, bootstrap=200)["bootstrap"]["per_class_AP50"]["insulator"]
    assert mine[1] > theirs[0]
