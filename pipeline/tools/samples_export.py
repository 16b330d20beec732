"""`inspector samples export`: the frames a daemon kept (pipeline/outputs/samples.py) as a data set to correct
in CVAT or Label Studio and to train on, with the models' predictions as pre-labels.

Labels per kept frame: every prediction of the frame, except that an event a person marked a false alarm (the
review index, events.sqlite) loses the boxes of its class that overlap its own box (IoU >= FALSE_ALARM_IOU):
the picture stays, as a negative there. Formats, each one `inspector train` reads back as a source (`format:`
coco, voc or yolo):
- coco: `annotations.json` (bbox x, y, w, h; a `score` on each pre-label) and `images/`;
- voc: `JPEGImages/`, `Annotations/` (one XML per picture, empty for a picture without objects),
  `ImageSets/Main/default.txt` and `labelmap.txt` (CVAT's Pascal VOC layout);
- yolo: `images/`, `labels/` (normalised `class cx cy w h`), `classes.txt` and `data.yaml`.
Beside them, `provenance.jsonl`: per picture its camera, frame, time, why it was kept, the event and the
decision, and the models that made the pre-labels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence

import numpy as np

from core.errors import UserError
from pipeline.events.rules import iou_matrix
from pipeline.outputs.samples import REASONS, SIDECAR

logger = logging.getLogger(__name__)

FORMATS = ("coco", "voc", "yolo")
FALSE_ALARM_IOU = 0.5


class SamplesError(UserError):
    """The samples or the output folder cannot be used; the message names them."""


@dataclasses.dataclass
class LabelledSample:
    picture: pathlib.Path
    name: str  # unique in the export
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2 camera pixels
    classes: List[str]
    scores: List[float]
    provenance: dict


def decisions(index_file: Optional[pathlib.Path]) -> Dict[str, dict]:
    """event id -> {state, note, box, class} from a review index; empty without one."""
    if index_file is None or not index_file.is_file():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{index_file}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT event_id, state, note, box, class FROM events").fetchall()
    except sqlite3.Error as exc:
        raise SamplesError(f"{index_file}: cannot read the review index: {exc}") from exc
    return {r[0]: {"state": r[1], "note": r[2], "box": json.loads(r[3]), "class": r[4]} for r in rows}


def read_samples(directory: pathlib.Path, index_file: Optional[pathlib.Path],
                 reasons: Sequence[str] = REASONS) -> List[LabelledSample]:
    if not directory.is_dir():
        raise SamplesError(f"{directory}: no samples folder (samples.enabled in the daemon's config keeps them)")
    decided = decisions(index_file)
    found = []
    for sidecar in sorted(directory.glob(f"*/*/*{SIDECAR}")):
        picture = sidecar.with_suffix(".jpg")
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("samples: %s unreadable (%s): left out", sidecar, exc)
            continue
        if meta.get("reason") not in reasons or not picture.is_file():
            continue
        predictions = meta.get("predictions", [])
        boxes = np.asarray([p["box"] for p in predictions], np.float64).reshape(-1, 4)
        classes = [p["class"] for p in predictions]
        scores = [p["score"] for p in predictions]
        decision = decided.get(meta.get("event_id") or "")
        if decision is not None and decision["state"] == "false_alarm" and len(boxes):
            overlap = iou_matrix(boxes, np.asarray([decision["box"]], np.float64))[:, 0]
            keep = [i for i in range(len(boxes)) if not (classes[i] == decision["class"]
                                                         and overlap[i] >= FALSE_ALARM_IOU)]
            boxes, classes, scores = boxes[keep], [classes[i] for i in keep], [scores[i] for i in keep]
        name = f"{meta['camera']}-{sidecar.parent.name}-{sidecar.stem}"
        found.append(LabelledSample(picture, name, int(meta["width"]), int(meta["height"]), boxes, classes,
                                    scores, {"file": f"{name}.jpg", "camera": meta["camera"], "frame": meta["frame"],
                                             "time": meta["time"], "reason": meta["reason"],
                                             "event_id": meta.get("event_id"),
                                             "review": decision and {"state": decision["state"],
                                                                     "note": decision["note"]},
                                             "models": meta.get("models", {})}))
    return found


def class_list(samples: List[LabelledSample]) -> List[str]:
    """The models' classes (stage 1's, then a second stage's new ones), then any other predicted class."""
    names: List[str] = []
    for sample in samples:
        for stage in ("stage1", "stage2"):
            for name in sample.provenance["models"].get(stage, {}).get("classes", []):
                if name not in names:
                    names.append(name)
    for sample in samples:
        for name in sample.classes:
            if name not in names:
                names.append(name)
    return names


def export(directory: pathlib.Path, index_file: Optional[pathlib.Path], out: pathlib.Path, fmt: str,
           reasons: Sequence[str] = REASONS) -> dict:
    """Write the data set; a summary (pictures, boxes per class, per reason, false alarms)."""
    if fmt not in FORMATS:
        raise SamplesError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if out.exists() and any(out.iterdir()):
        raise SamplesError(f"{out}: not empty (an export never writes over files)")
    samples = read_samples(directory, index_file, reasons)
    if not samples:
        raise SamplesError(f"{directory}: no kept frame of the kinds {', '.join(reasons)}")
    names = class_list(samples)
    images = out / ("JPEGImages" if fmt == "voc" else "images")
    images.mkdir(parents=True)
    for sample in samples:
        shutil.copy2(sample.picture, images / f"{sample.name}.jpg")
    {"coco": _write_coco, "voc": _write_voc, "yolo": _write_yolo}[fmt](samples, names, out)
    with (out / "provenance.jsonl").open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample.provenance) + "\n")
    counts = {name: sum(c == name for s in samples for c in s.classes) for name in names}
    return {"pictures": len(samples), "classes": names, "boxes": counts, "format": fmt, "out": str(out),
            "reasons": {r: sum(s.provenance["reason"] == r for s in samples) for r in REASONS},
            "false_alarms": sum(bool(s.provenance["review"]) and s.provenance["review"]["state"] == "false_alarm"
                                for s in samples)}


def _write_coco(samples, names, out: pathlib.Path) -> None:
    images, annotations = [], []
    for image_id, sample in enumerate(samples, start=1):
        images.append({"id": image_id, "file_name": f"images/{sample.name}.jpg", "width": sample.width,
                       "height": sample.height})
        for box, name, score in zip(sample.boxes, sample.classes, sample.scores):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": names.index(name) + 1,
                                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                                "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0, "score": score})
    data = {"info": {"description": "inspector samples with pre-labels"}, "images": images,
            "annotations": annotations,
            "categories": [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(names)]}
    (out / "annotations.json").write_text(json.dumps(data), encoding="utf-8")


def _write_voc(samples, names, out: pathlib.Path) -> None:
    (out / "Annotations").mkdir()
    (out / "ImageSets" / "Main").mkdir(parents=True)
    for sample in samples:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = f"{sample.name}.jpg"
        size = ET.SubElement(root, "size")
        for key, value in (("width", sample.width), ("height", sample.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for box, name in zip(sample.boxes, sample.classes):
            item = ET.SubElement(root, "object")
            ET.SubElement(item, "name").text = name
            ET.SubElement(item, "difficult").text = "0"
            bndbox = ET.SubElement(item, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
                ET.SubElement(bndbox, key).text = f"{float(value):.2f}"
        ET.ElementTree(root).write(out / "Annotations" / f"{sample.name}.xml", encoding="utf-8")
    (out / "ImageSets" / "Main" / "default.txt").write_text("".join(f"{s.name}\n" for s in samples))
    (out / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" +
                                      "".join(f"{name}:::\n" for name in names))


def _write_yolo(samples, names, out: pathlib.Path) -> None:
    (out / "labels").mkdir()
    for sample in samples:
        lines = []
        for box, name in zip(sample.boxes, sample.classes):
            x1, y1, x2, y2 = (float(v) for v in box)
            lines.append(f"{names.index(name)} {(x1 + x2) / 2 / sample.width:.6f} {(y1 + y2) / 2 / sample.height:.6f} "
                         f"{(x2 - x1) / sample.width:.6f} {(y2 - y1) / sample.height:.6f}")
        (out / "labels" / f"{sample.name}.txt").write_text("".join(line + "\n" for line in lines))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in names))
    (out / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames: {json.dumps(names)}\n")
