"""Detection data sets: Pascal VOC (including the CPLID layout), with problems reported per file.

A sample is an image path plus boxes in image pixels (x1, y1, x2, y2) and class indices. Annotation problems
(a box outside the image, an empty or unreadable file, an unknown class, an image without annotation) are
collected as `DatasetIssue`s, never silently fixed: the offending object (or file) is left out and reported.

CPLID: `Normal_Insulators/{images,labels}` with one XML per image, and `Defective_Insulators/images` with two
XMLs per image (`labels/insulator/<stem>.xml`, `labels/defect/<stem>.xml`) that are merged. `<filename>` has no
extension, so annotations are matched to images by file stem.
"""

from __future__ import annotations

import dataclasses
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass(frozen=True)
class Sample:
    image: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in image pixels
    labels: np.ndarray  # (N,) int64


@dataclasses.dataclass(frozen=True)
class DatasetIssue:
    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


@dataclasses.dataclass
class Dataset:
    samples: list[Sample]
    class_names: tuple[str, ...]
    issues: list[DatasetIssue]

    def counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.class_names}
        for sample in self.samples:
            for label in sample.labels:
                counts[self.class_names[int(label)]] += 1
        return counts


def _parse_voc(path: pathlib.Path, class_names: tuple[str, ...], issues: list[DatasetIssue]):
    """(width, height, boxes, labels) from one VOC XML, or None if the file is unusable."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        issues.append(DatasetIssue(str(path), f"unreadable annotation: {exc}"))
        return None
    try:
        width = int(float(root.findtext("size/width")))
        height = int(float(root.findtext("size/height")))
    except (TypeError, ValueError):
        issues.append(DatasetIssue(str(path), "no <size> width/height"))
        return None
    boxes, labels = [], []
    for index, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in class_names:
            issues.append(DatasetIssue(str(path), f"object {index}: unknown class {name!r} (left out)"))
            continue
        try:
            box = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            issues.append(DatasetIssue(str(path), f"object {index}: malformed <bndbox> (left out)"))
            continue
        x1, y1, x2, y2 = box
        if x2 <= x1 or y2 <= y1:
            issues.append(DatasetIssue(str(path), f"object {index}: empty box {box} (left out)"))
            continue
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            issues.append(DatasetIssue(str(path), f"object {index}: box {box} outside the {width}x{height} "
                                                  f"image (left out)"))
            continue
        boxes.append(box)
        labels.append(class_names.index(name))
    return width, height, boxes, labels


def load_voc(root: str | pathlib.Path, class_names: list[str] | tuple[str, ...]) -> Dataset:
    """Every `images/` folder under `root`, annotations from the sibling `labels/` (or `Annotations/`) folder:
    `<stem>.xml` directly inside it and `<any>/<stem>.xml` one level down (merged)."""
    root = pathlib.Path(root)
    class_names = tuple(class_names)
    issues: list[DatasetIssue] = []
    samples: list[Sample] = []
    image_dirs = sorted(p for p in root.rglob("*") if p.is_dir() and p.name in ("images", "JPEGImages"))
    if not image_dirs:
        raise FileNotFoundError(f"{root}: no images/ (or JPEGImages/) folder")
    for image_dir in image_dirs:
        label_dir = next((image_dir.parent / n for n in ("labels", "Annotations") if (image_dir.parent / n).is_dir()),
                         None)
        for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            xmls = []
            if label_dir is not None:
                xmls = [p for p in [label_dir / f"{image.stem}.xml"] if p.is_file()]
                xmls += sorted(label_dir.glob(f"*/{image.stem}.xml"))
            if not xmls:
                issues.append(DatasetIssue(str(image), "no annotation file (image left out)"))
                continue
            boxes, labels, size = [], [], None
            for xml in xmls:
                parsed = _parse_voc(xml, class_names, issues)
                if parsed is None:
                    continue
                width, height, b, l = parsed
                if size is not None and size != (width, height):
                    issues.append(DatasetIssue(str(xml), f"size {width}x{height} differs from {size} in the "
                                                         f"other annotation of this image"))
                size = size or (width, height)
                boxes += b
                labels += l
            if size is None:
                continue
            samples.append(Sample(str(image), size[0], size[1], np.asarray(boxes, np.float32).reshape(-1, 4),
                                  np.asarray(labels, np.int64)))
    return Dataset(samples, class_names, issues)


def split(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A deterministic train/validation split by image (stratified by folder, so both CPLID parts appear)."""
    rng = np.random.default_rng(seed)
    by_folder: dict[str, list[Sample]] = {}
    for sample in dataset.samples:
        by_folder.setdefault(str(pathlib.Path(sample.image).parent), []).append(sample)
    train, val = [], []
    for folder in sorted(by_folder):
        items = by_folder[folder]
        order = rng.permutation(len(items))
        n_val = int(round(len(items) * val_fraction))
        val += [items[i] for i in order[:n_val]]
        train += [items[i] for i in order[n_val:]]
    return (Dataset(train, dataset.class_names, dataset.issues), Dataset(val, dataset.class_names, []))
