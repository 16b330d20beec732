"""The evaluated pictures drawn with their labels and the detections a deployment would report (`inspector eval
--draw`), to see where a model fails rather than only by how much: labels green, detections at or above their
class's threshold red with name and score (Ultralytics' val writes its batches the same way, labels and
predictions apart; one picture here, because a miss is read against the label beside it).
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

from train.datasets import Dataset

LABEL = (0, 200, 0)      # BGR
DETECTION = (0, 0, 255)


def _box(picture: np.ndarray, box, colour, text: str, below: bool) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(picture, (x1, y1), (x2, y2), colour, 2)
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    # Labels write their name above the box, detections below it, so that a found object shows both.
    top = min(y2 + 2, picture.shape[0] - height - base) if below else max(y1 - height - base - 2, 0)
    cv2.rectangle(picture, (x1, top), (x1 + width + 2, top + height + base), colour, -1)
    cv2.putText(picture, text, (x1 + 1, top + height), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)


def draw_pictures(dataset: Dataset, detections: list[dict], out: str | pathlib.Path) -> list[pathlib.Path]:
    """Every readable picture of `dataset` as `<out>/<index>_<name>.jpg`, with its labels and `detections`
    ({"image_id": index in dataset.samples, "name": class name, "bbox": [x, y, w, h] in picture pixels, "score"}:
    `reported`'s)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_picture: dict[int, list[dict]] = {}
    for detection in detections:
        by_picture.setdefault(detection["image_id"], []).append(detection)
    written = []
    for index, sample in enumerate(dataset.samples):
        picture = cv2.imread(sample.image)
        if picture is None:
            continue  # eval reports it as unreadable
        for box, label in zip(sample.boxes, sample.labels):
            _box(picture, box, LABEL, dataset.class_names[int(label)], below=False)
        for detection in sorted(by_picture.get(index, []), key=lambda d: d["score"]):
            x, y, w, h = detection["bbox"]
            _box(picture, (x, y, x + w, y + h), DETECTION, f"{detection['name']} {detection['score']:.2f}",
                 below=True)
        path = out / f"{index:04d}_{pathlib.Path(sample.image).stem}.jpg"
        if not cv2.imwrite(str(path), picture):
            raise OSError(f"{path}: cannot write the picture")
        written.append(path)
    return written


def reported(results: list[dict], class_names, thresholds) -> list[dict]:
    """The COCO result dicts (category_id: 1-based index into `class_names`) a deployment reports: score at or
    above its class's threshold (`thresholds`, in the order of `class_names`), named."""
    return [result | {"name": class_names[result["category_id"] - 1]} for result in results
            if result["score"] >= thresholds[result["category_id"] - 1]]
