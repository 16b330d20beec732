"""A second-stage training set cut from ordinary annotations (docs/cascade.md).

Around every annotated parent object (an insulator) the crops the deployed cascade cuts (models/crops.py: the
same margin and tiles), with the child objects (defects) mapped into them; crops with no child are kept as
negatives (a sample of them in training). Training crops are cut from a jittered parent box, because at run
time the box comes from a detector, and optionally with tiles of a jittered size (`tile_jitter`), because another
camera's distance shows a defect at another size in its tile, and optionally several times (`copies`), each from
its own jittered box; held-out crops once, from the exact box and tile size.
The split is by source picture, with the first stage's split settings, so that no held-out picture of either
stage was seen by the other.

Crops are written once as PNG (lossless: no second JPEG generation) under `<out>/crops/{train,val}/` with a
manifest; a later run with the same sources and settings (e.g. `--resume`) reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import pathlib

import cv2
import numpy as np

from core.errors import ConfigError
from models.crops import CropSettings, boxes_in_crop, crop_regions
from train.config import CropDataConfig, TrainConfig
from train.datasets import Dataset, Sample, keep_label_fraction, split_data

logger = logging.getLogger(__name__)

MANIFEST = "crops.json"


def crop_settings(crops: CropDataConfig) -> CropSettings:
    return CropSettings(crops.margin, crops.max_aspect, crops.overlap, crops.min_side, crops.max_side)


def spec_crops(crops: CropDataConfig) -> dict:
    """What the exported second-stage model's manifest records (ModelSpec.crops): where it looks."""
    return {"parents": list(crops.parents), "margin": crops.margin, "max_aspect": crops.max_aspect,
            "overlap": crops.overlap, "min_side": crops.min_side, "max_side": crops.max_side}


def source_classes(config: TrainConfig) -> tuple[str, ...]:
    crops = config.data.crops
    return tuple(crops.parents) + tuple(c for c in config.data.classes if c not in crops.parents)


def source_split(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """The full-picture data set split as the first stage splits it (by picture, per folder, same seed)."""
    return split_data(config.data, source_classes(config))


def jittered(box: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    short = float(min(box[2] - box[0], box[3] - box[1]))
    moved = box + rng.uniform(-fraction, fraction, 4).astype(np.float32) * short
    if moved[2] - moved[0] < 2 or moved[3] - moved[1] < 2:
        return box
    return moved


def tile_scaled(settings: CropSettings, fraction: float, rng: np.random.Generator) -> CropSettings:
    """The settings with max_side times a log-uniform factor in [1 / (1 + fraction), 1 + fraction]."""
    factor = math.exp(rng.uniform(-1.0, 1.0) * math.log1p(fraction))
    return dataclasses.replace(settings, max_side=min(1.0, settings.max_side * factor))


def _crop(sample: Sample, image: np.ndarray, rect, child_boxes: np.ndarray, child_labels: np.ndarray,
          child_map: dict, min_visible: float, path: pathlib.Path) -> tuple[Sample, np.ndarray]:
    """The crop `rect` of `sample` as a sample of its own (the children visible enough in it, in its pixels) and
    its pixels, cut from `image`."""
    x1, y1, x2, y2 = rect
    kept, local = boxes_in_crop(child_boxes, rect, min_visible)
    labels = np.asarray([child_map[int(l)] for l in child_labels[kept]], np.int64)
    return (Sample(str(path), int(x2 - x1), int(y2 - y1), local.astype(np.float32), labels, source=sample.source),
            image[y1:y2, x1:x2].copy())


def cut(samples: list[Sample], config: TrainConfig, out: pathlib.Path, training: bool,
        rng: np.random.Generator) -> list[Sample]:
    """Crops of every parent object of `samples`, written under `out`."""
    crops = config.data.crops
    settings = crop_settings(crops)
    classes = source_classes(config)
    parent_ids = [classes.index(p) for p in crops.parents]
    child_map = {classes.index(c): k for k, c in enumerate(config.data.classes)}
    out.mkdir(parents=True, exist_ok=True)
    positives, negatives = [], []
    for index, sample in enumerate(samples):
        image = cv2.imread(sample.image)
        if image is None:
            raise FileNotFoundError(f"{sample.image}: cannot read image")
        is_child = np.isin(sample.labels, list(child_map))
        child_boxes, child_labels = sample.boxes[is_child], sample.labels[is_child]
        parents = sample.boxes[np.isin(sample.labels, parent_ids)]
        for p, parent in enumerate(parents):
            for copy in range(crops.copies if training else 1):
                box = jittered(parent, crops.jitter, rng) if training and crops.jitter else parent
                tiles = tile_scaled(settings, crops.tile_jitter, rng) if training and crops.tile_jitter else settings
                suffix = f"_c{copy}" if copy else ""  # the first cut keeps the name it has with copies 1
                for t, rect in enumerate(crop_regions(box, sample.width, sample.height, tiles)):
                    crop, pixels = _crop(sample, image, rect, child_boxes, child_labels, child_map, crops.min_visible,
                                         out / f"{index:05d}_{pathlib.Path(sample.image).stem}_p{p}_t{t}{suffix}.png")
                    (positives if len(crop.labels) else negatives).append((crop, pixels))
    if training and crops.negatives_per_positive is not None:
        limit = int(round(crops.negatives_per_positive * max(1, len(positives))))
        if len(negatives) > limit:
            order = rng.permutation(len(negatives))[:limit]
            negatives = [negatives[i] for i in sorted(order)]
    for crop, pixels in positives + negatives:
        if not cv2.imwrite(crop.image, pixels):
            raise OSError(f"{crop.image}: cannot write the crop")
    return [crop for crop, _ in positives + negatives]


def _key(config: TrainConfig, train_src: Dataset, val_src: Dataset) -> str:
    """What the written crops depend on: the sources (paths and boxes), the settings, the split and seed."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"crops": config.data.crops.model_dump(), "classes": list(config.data.classes),
                              "seed": config.data.split_seed}, sort_keys=True).encode())
    for sample in train_src.samples + [None] + val_src.samples:
        if sample is None:
            digest.update(b"|val|")
            continue
        digest.update(sample.image.encode())
        digest.update(sample.boxes.tobytes())
        digest.update(sample.labels.tobytes())
    return digest.hexdigest()


def _to_json(samples: list[Sample]) -> list[dict]:
    return [{"image": pathlib.Path(s.image).name, "width": s.width, "height": s.height,
             "boxes": s.boxes.tolist(), "labels": s.labels.tolist(), "source": s.source} for s in samples]


def _from_json(entries: list[dict], directory: pathlib.Path) -> list[Sample]:
    return [Sample(str(directory / e["image"]), e["width"], e["height"],
                   np.asarray(e["boxes"], np.float32).reshape(-1, 4), np.asarray(e["labels"], np.int64),
                   source=e.get("source", "data"))
            for e in entries]


def build_crop_sets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """(training crops, held-out crops), written to or reused from `<out>/crops`."""
    train_src, val_src = source_split(config)
    train_src, lines = keep_label_fraction(train_src, config.data.label_fraction, config.data.split_seed + 1)
    for line in lines:
        logger.info("crops: %s (before cutting)", line)
    source_names = source_classes(config)
    parent_ids = [source_names.index(name) for name in config.data.crops.parents]
    if not any(np.isin(sample.labels, parent_ids).any() for sample in train_src.samples):
        raise ConfigError(f"data.crops.parents: no object of {config.data.crops.parents} in the "
                          f"{len(train_src.samples)} training pictures of "
                          f"{', '.join(source.path for source in config.data.source_list())}: the crops are cut "
                          f"around them (check the names against the annotations')")
    root = pathlib.Path(config.out) / "crops"
    key = _key(config, train_src, val_src)
    manifest_path = root / MANIFEST
    classes = tuple(config.data.classes)
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("key") == key:
            logger.info("crops: reusing %s (%d training, %d held-out crops)", root, len(manifest["train"]),
                        len(manifest["val"]))
            return (Dataset(_from_json(manifest["train"], root / "train"), classes, train_src.issues),
                    Dataset(_from_json(manifest["val"], root / "val"), classes, []))
        logger.info("crops: %s was cut from other sources or settings: cutting again", root)
    for stale in list(root.glob("train/*.png")) + list(root.glob("val/*.png")):
        stale.unlink()  # our own earlier crops; the manifest below is written last, so a torn run is redone
    manifest_path.unlink(missing_ok=True)
    rng = np.random.default_rng(config.data.split_seed + 7)
    train = cut(train_src.samples, config, root / "train", True, rng)
    val = cut(val_src.samples, config, root / "val", False, rng)
    counts = {name: {"crops": len(crops), "with_child": sum(bool(len(c.labels)) for c in crops),
                     "pictures": len(src.samples)}
              for name, crops, src in (("train", train, train_src), ("val", val, val_src))}
    manifest_path.write_text(json.dumps({"key": key, "counts": counts, "settings": config.data.crops.model_dump(),
                                         "train": _to_json(train), "val": _to_json(val)}), encoding="utf-8")
    logger.info("crops: %s", counts)
    return Dataset(train, classes, train_src.issues), Dataset(val, classes, [])
