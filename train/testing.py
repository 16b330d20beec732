"""A tiny generated VOC data set for tests and smoke runs: coloured rectangles (class `box`) and ellipses
(class `disc`) on a textured background, with exact boxes. Ships with the package (mmengine-style fakes)."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

CLASSES = ("box", "disc")


def write_voc_dataset(root: str | pathlib.Path, images: int = 24, size: tuple[int, int] = (160, 128),
                      seed: int = 0) -> pathlib.Path:
    root = _voc_folders(root)
    rng = np.random.default_rng(seed)
    width, height = size
    for index in range(images):
        image = _background(rng, width, height)
        objects = []
        for _ in range(int(rng.integers(1, 4))):
            w, h = int(rng.integers(24, 60)), int(rng.integers(24, 60))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            cls = int(rng.integers(0, 2))
            if cls == 0:
                cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (40, 40, 230), -1)
            else:
                cv2.ellipse(image, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, (230, 200, 30), -1)
            objects.append((CLASSES[cls], x, y, x + w, y + h))
        write_voc_sample(root, f"{index:03d}", ".jpg", image, objects)
    return root


def _voc_folders(root: str | pathlib.Path) -> pathlib.Path:
    root = pathlib.Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    return root


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """The grey noise every generated picture starts from."""
    return rng.integers(60, 120, (height, width, 3), dtype=np.uint8)


def write_voc_sample(root: pathlib.Path, name: str, suffix: str, image: np.ndarray, objects) -> None:
    """`images/<name><suffix>` and `labels/<name>.xml` with `objects` as (class, x1, y1, x2, y2)."""
    height, width = image.shape[:2]
    cv2.imwrite(str(root / "images" / f"{name}{suffix}"), image)
    xml = [f"<annotation><filename>{name}</filename><size><width>{width}</width><height>{height}</height>"
           "<depth>3</depth></size>"]
    for cls, x1, y1, x2, y2 in objects:
        xml.append(f"<object><name>{cls}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
                   f"<ymax>{y2}</ymax></bndbox></object>")
    (root / "labels" / f"{name}.xml").write_text("".join(xml) + "</annotation>")


CASCADE_CLASSES = ("string", "fault")


def write_cascade_dataset(root: str | pathlib.Path, images: int = 12, size: tuple[int, int] = (320, 240),
                          seed: int = 0) -> pathlib.Path:
    """Pictures for a two-stage cascade: long thin bars (class `string`, 5-6 times longer than wide, horizontal
    or vertical, blue) with small red squares on some of them (class `fault`, inside their bar)."""
    root = _voc_folders(root)
    rng = np.random.default_rng(seed)
    width, height = size
    for index in range(images):
        image = _background(rng, width, height)
        objects = []
        vertical = bool(index % 2)
        short, long_ = int(rng.integers(20, 30)), int(rng.integers(120, 160))
        w, h = (short, long_) if vertical else (long_, short)
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (200, 60, 30), -1)
        objects.append(("string", x, y, x + w, y + h))
        if index % 3:
            side = short // 2
            along = int(rng.integers(0, long_ - side))
            fx, fy = (x + (w - side) // 2, y + along) if vertical else (x + along, y + (h - side) // 2)
            cv2.rectangle(image, (fx, fy), (fx + side - 1, fy + side - 1), (30, 30, 230), -1)
            objects.append(("fault", fx, fy, fx + side, fy + side))
        write_voc_sample(root, f"{index:03d}", ".png", image, objects)
    return root
