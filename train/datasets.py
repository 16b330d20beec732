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
import math
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

from train.config import DataConfig, load_train_config

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass(frozen=True)
class Sample:
    image: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in image pixels
    labels: np.ndarray  # (N,) int64
    source: str = "data"  # the data set it came from (a training's `sources`)


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

    def by_source(self) -> dict[str, "Dataset"]:
        """The samples of each source, in the order they first appear."""
        parts: dict[str, list[Sample]] = {}
        for sample in self.samples:
            parts.setdefault(sample.source, []).append(sample)
        return {name: Dataset(samples, self.class_names, []) for name, samples in parts.items()}


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
        if not all(math.isfinite(v) for v in box):
            issues.append(DatasetIssue(str(path), f"object {index}: <bndbox> {box} is not finite (left out)"))
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


def annotation_size_problem(image: pathlib.Path, width: int, height: int) -> str | None:
    """The picture against the size its annotation (VOC <size>, COCO width/height) gives (boxes are in the annotation's pixels: a picture resized
    or rotated after annotating puts them elsewhere). Decoded at 1/8 scale (libjpeg's DCT scaling: ~1 ms)."""
    import cv2

    reduced = cv2.imread(str(image), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if reduced is None:
        return "unreadable image"
    real_h, real_w = reduced.shape[:2]
    if abs(real_w * 8 - width) >= 16 or abs(real_h * 8 - height) >= 16:
        return (f"the annotation's size {width}x{height} is not the picture's (about {real_w * 8}x{real_h * 8}): "
                f"resized or rotated after it was annotated?")
    return None


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
            problem = annotation_size_problem(image, *size)
            if problem:
                issues.append(DatasetIssue(str(image), f"{problem} (image left out)"))
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


def load_coco(annotation_file: str | pathlib.Path, image_dir: str | pathlib.Path | None,
              class_names: list[str] | tuple[str, ...]) -> Dataset:
    """A COCO detection JSON (`images`, `annotations` with `bbox` x, y, w, h, `categories`). Images are looked up
    in `image_dir` (default: the JSON's folder) by `file_name`, else in a sibling `images/` folder (CVAT's
    layout: `annotations/instances_default.json` beside `images/`)."""
    import json

    annotation_file = pathlib.Path(annotation_file)
    image_dir = pathlib.Path(image_dir) if image_dir else annotation_file.parent
    class_names = tuple(class_names)
    issues: list[DatasetIssue] = []
    try:
        data = json.loads(annotation_file.read_text(encoding="utf-8"))
        images = {int(i["id"]): i for i in data["images"]}
        categories = {int(c["id"]): c["name"] for c in data["categories"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{annotation_file}: not a COCO detection file: {exc}") from exc
    boxes: dict[int, list] = {i: [] for i in images}
    for index, ann in enumerate(data.get("annotations", [])):
        where = f"{annotation_file}: annotations[{index}]"
        image = images.get(int(ann.get("image_id", -1)))
        name = categories.get(int(ann.get("category_id", -1)))
        if image is None:
            issues.append(DatasetIssue(where, f"image_id {ann.get('image_id')} names no image (left out)"))
            continue
        if name not in class_names:
            issues.append(DatasetIssue(where, f"unknown class {name!r} (left out)"))
            continue
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            issues.append(DatasetIssue(where, f"bbox {ann.get('bbox')!r} is not 4 numbers x, y, w, h (left out)"))
            continue
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > image["width"] or y + h > image["height"]:
            issues.append(DatasetIssue(where, f"box {[x, y, w, h]} empty or outside the "
                                              f"{image['width']}x{image['height']} image (left out)"))
            continue
        boxes[int(image["id"])].append(([x, y, x + w, y + h], class_names.index(name)))
    samples = []
    for image_id, image in images.items():
        # CVAT's COCO export keeps the JSON in annotations/ and the pictures in a sibling images/ folder.
        path = next((candidate for candidate in (image_dir / image["file_name"],
                                                 image_dir.parent / "images" / image["file_name"])
                     if candidate.is_file()), image_dir / image["file_name"])
        if not path.is_file():
            issues.append(DatasetIssue(str(path), "image file missing (left out)"))
            continue
        problem = annotation_size_problem(path, int(image["width"]), int(image["height"]))
        if problem:
            issues.append(DatasetIssue(str(path), f"{problem} (image left out)"))
            continue
        items = boxes[image_id]
        samples.append(Sample(str(path), int(image["width"]), int(image["height"]),
                              np.asarray([b for b, _ in items], np.float32).reshape(-1, 4),
                              np.asarray([c for _, c in items], np.int64)))
    return Dataset(samples, class_names, issues)


def load_yolo(root: str | pathlib.Path, class_names: list[str] | tuple[str, ...]) -> Dataset:
    """YOLO txt: `images/<stem>.jpg` with `labels/<stem>.txt`, one `class cx cy w h` line per object, all
    normalised to the image size. An image without a label file is a background image (no objects)."""
    import cv2

    root = pathlib.Path(root)
    class_names = tuple(class_names)
    issues: list[DatasetIssue] = []
    samples = []
    image_dirs = sorted(p for p in root.rglob("images") if p.is_dir())
    if not image_dirs:
        raise FileNotFoundError(f"{root}: no images/ folder")
    for image_dir in image_dirs:
        for image_path in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label_path = image_dir.parent / "labels" / f"{image_path.stem}.txt"
            picture = cv2.imread(str(image_path))
            if picture is None:
                issues.append(DatasetIssue(str(image_path), "unreadable image (left out)"))
                continue
            height, width = picture.shape[:2]
            boxes, labels = [], []
            lines = label_path.read_text(encoding="utf-8").splitlines() if label_path.is_file() else []
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{label_path}:{number}"
                parts = line.split()
                try:
                    cls, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
                    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
                        raise ValueError("not finite")
                except (ValueError, IndexError):
                    issues.append(DatasetIssue(where, f"expected 'class cx cy w h', got {line!r} (left out)"))
                    continue
                if not 0 <= cls < len(class_names):
                    issues.append(DatasetIssue(where, f"class index {cls} outside the {len(class_names)} classes "
                                                      f"(left out)"))
                    continue
                x1, y1, x2, y2 = (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
                if w <= 0 or h <= 0 or x1 < -0.5 or y1 < -0.5 or x2 > width + 0.5 or y2 > height + 0.5:
                    issues.append(DatasetIssue(where, f"box {[cx, cy, w, h]} empty or outside the image (left out)"))
                    continue
                boxes.append([max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height)])
                labels.append(cls)
            samples.append(Sample(str(image_path), width, height, np.asarray(boxes, np.float32).reshape(-1, 4),
                                  np.asarray(labels, np.int64)))
    return Dataset(samples, class_names, issues)


def load_dataset(path: str | pathlib.Path, fmt: str, class_names) -> Dataset:
    if fmt == "voc":
        return load_voc(path, class_names)
    if fmt == "coco":
        path = pathlib.Path(path)
        annotation = path if path.is_file() else next(iter(sorted(path.glob("*.json")) +
                                                          sorted(path.glob("annotations/*.json"))), None)
        if annotation is None:
            raise FileNotFoundError(f"{path}: no COCO .json annotation file (in it or in its annotations/)")
        return load_coco(annotation, None, class_names)
    if fmt == "yolo":
        return load_yolo(path, class_names)
    raise ValueError(f"format {fmt!r} is not one of voc, coco, yolo")


def load_source(path: str | pathlib.Path, fmt: str, class_names, class_map: dict | None = None,
                name: str = "data") -> Dataset:
    """One data set with its class names mapped to the model's (`class_map`: source name -> model name, None
    to leave a class out; a class not in the map keeps its name if the model has it). Labels index
    `class_names`; every sample remembers `name`."""
    class_map = dict(class_map or {})
    class_names = tuple(class_names)
    accepted = [s for s, target in class_map.items() if target is not None]
    accepted += [c for c in class_names if c not in class_map and c not in accepted]
    loaded = load_dataset(path, fmt, accepted)
    index = np.asarray([class_names.index(class_map.get(s) or s) for s in accepted], np.int64)
    samples = [dataclasses.replace(sample, labels=index[sample.labels] if len(sample.labels) else sample.labels,
                                   source=name) for sample in loaded.samples]
    issues = [dataclasses.replace(issue, problem=f"[{name}] {issue.problem}") if name != "data" else issue
              for issue in loaded.issues]
    return Dataset(samples, class_names, issues)


def split_sources(sources, class_names, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(training, held-out) over every source (train/config.py SourceConfig), each held out on its own: its
    val_path, or a split by picture per folder with its own fraction."""
    train: list[Sample] = []
    val: list[Sample] = []
    issues: list[DatasetIssue] = []
    for source in sources:
        dataset = load_source(source.path, source.format, class_names, source.class_map, source.name)
        issues += dataset.issues
        if source.val_path:
            held = load_source(source.val_path, source.format, class_names, source.class_map, source.name)
            part_train, part_val = dataset, held
        else:
            part_train, part_val = split(dataset, source.val_fraction or val_fraction, seed)
        train += part_train.samples
        val += part_val.samples
    return Dataset(train, tuple(class_names), issues), Dataset(val, tuple(class_names), [])


def split_data(data: DataConfig, class_names) -> tuple[Dataset, Dataset]:
    """(training, held-out) full pictures of a training config's `data`, labelled for `class_names`: the one split
    its training, its second stage's crops and its evaluation all use."""
    return split_sources(data.source_list(), class_names, data.val_fraction, data.split_seed)


def held_out_of(config_path: str | pathlib.Path, class_names) -> Dataset:
    """The full pictures a training config holds out, labelled for `class_names`: its val_path, or the split of
    its data (by picture, per folder, with its seed), as its training did."""
    return split_data(load_train_config(str(config_path)).data, class_names)[1]


def keep_label_fraction(dataset: Dataset, fractions: dict[str, float], seed: int) -> tuple[Dataset, list[str]]:
    """(the training pictures with only `fraction` of those showing each named class kept, one line per class
    saying how many). Whole pictures are dropped, with every box in them, as if they had never been labelled;
    the held-out set is never reduced. Applied before a second stage's crops are cut, so a fraction means the
    same pictures for both stages."""
    rng = np.random.default_rng(seed)
    lines = []
    for name, fraction in fractions.items():
        k = dataset.class_names.index(name)
        with_class = [i for i, s in enumerate(dataset.samples) if (s.labels == k).any()]
        drop = set(rng.permutation(with_class)[int(round(len(with_class) * fraction)):].tolist())
        dataset = Dataset([s for i, s in enumerate(dataset.samples) if i not in drop], dataset.class_names,
                          dataset.issues)
        lines.append(f"label_fraction {name}={fraction:.2f}: {len(with_class) - len(drop)} of {len(with_class)} "
                     f"training pictures with {name} kept")
    return dataset, lines
