import re

import numpy as np
import pytest

from train.datasets import load_voc, split
from train.testing import write_voc_dataset

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def test_cplid_two_annotation_files_are_merged(shared_dir):
    dataset = load_voc(shared_dir / "datasets/cplid", ["insulator", "defect"])
    assert len(dataset.samples) == 679 and dataset.issues == []
    defective = [s for s in dataset.samples if "Defective" in s.image]
    assert len(defective) == 199
    # Every defective image has both its insulator and its defect boxes.
    assert all({0, 1} <= set(s.labels.tolist()) for s in defective)
    assert dataset.counts() == {"insulator": 1044, "defect": 199}


def test_problems_are_reported_per_file_and_never_fixed(tmp_path):
    root = write_voc_dataset(tmp_path / "d", images=4)
    (root / "labels" / "000.xml").write_text(
        "<annotation><size><width>160</width><height>128</height></size>"
        "<object><name>box</name><bndbox><xmin>150</xmin><ymin>10</ymin><xmax>170</xmax><ymax>20</ymax></bndbox>"
        "</object><object><name>bird</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
        "</bndbox></object><object><name>disc</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>")
    (root / "labels" / "001.xml").write_text("<annotation><size>")
    (root / "labels" / "002.xml").unlink()
    dataset = load_voc(root, ["box", "disc"])
    problems = sorted(str(i) for i in dataset.issues)
    assert any("000.xml: object 0: box [150.0, 10.0, 170.0, 20.0] outside the 160x128 image" in p for p in problems)
    assert any("000.xml: object 1: unknown class 'bird'" in p for p in problems)
    assert any("001.xml: unreadable annotation" in p for p in problems)
    assert any("002.jpg: no annotation file" in p for p in problems)
    sample = next(s for s in dataset.samples if s.image.endswith("000.jpg"))
    assert sample.boxes.tolist() == [[10, 10, 40, 40]]  # the good object stays, the bad ones are left out
    assert len(dataset.samples) == 2


def test_split_is_deterministic_and_disjoint(tmp_path):
    dataset = load_voc(write_voc_dataset(tmp_path / "d", images=20), ["box", "disc"])
    a_train, a_val = split(dataset, 0.25, seed=3)
    b_train, b_val = split(dataset, 0.25, seed=3)
    assert [s.image for s in a_val.samples] == [s.image for s in b_val.samples]
    assert len(a_val.samples) == 5 and not {s.image for s in a_val.samples} & {s.image for s in a_train.samples}


def test_missing_images_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images/"):
        load_voc(tmp_path, ["x"])


def test_the_three_formats_give_the_same_samples(tmp_path):
    """The generated VOC set rewritten as COCO JSON and YOLO txt loads to the same boxes."""
    import json
    import shutil

    from train.datasets import load_dataset

    voc = load_voc(write_voc_dataset(tmp_path / "voc", images=6), ["box", "disc"])
    coco_dir = tmp_path / "coco"
    yolo = tmp_path / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    coco_dir.mkdir()
    images, annotations = [], []
    for i, s in enumerate(voc.samples):
        name = s.image.rsplit("/", 1)[1]
        shutil.copy(s.image, coco_dir / name)
        shutil.copy(s.image, yolo / "images" / name)
        images.append({"id": i, "file_name": name, "width": s.width, "height": s.height})
        lines = []
        for box, label in zip(s.boxes, s.labels):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1]})
            lines.append(f"{label} {(x1 + x2) / 2 / s.width} {(y1 + y2) / 2 / s.height} {(x2 - x1) / s.width} "
                         f"{(y2 - y1) / s.height}")
        (yolo / "labels" / name.replace(".jpg", ".txt")).write_text("\n".join(lines) + "\n")
    (coco_dir / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                         "categories": [{"id": 1, "name": "box"},
                                                                        {"id": 2, "name": "disc"}]}))
    for fmt, path in (("coco", coco_dir), ("yolo", yolo)):
        other = load_dataset(path, fmt, ["box", "disc"])
        assert other.issues == [] and len(other.samples) == len(voc.samples)
        for a, b in zip(voc.samples, other.samples):
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
            assert a.labels.tolist() == b.labels.tolist()
    (yolo / "labels" / "000.txt").write_text("7 0.5 0.5 0.1 0.1\n0 0.99 0.5 0.2 0.2\nnonsense\n")
    problems = [str(i) for i in load_dataset(yolo, "yolo", ["box", "disc"]).issues]
    assert any("class index 7 outside the 2 classes" in p for p in problems)
    assert any("000.txt:2: box" in p and "outside the image" in p for p in problems)
    assert any("000.txt:3: expected 'class cx cy w h'" in p for p in problems)


def test_numbers_that_are_no_box_and_sizes_that_are_not_the_pictures_are_left_out(tmp_path):
    """`<xmin>nan</xmin>` passed every comparison; a <size> of another picture put boxes elsewhere: both are
    reported and left out. COCO boxes that are missing or not numbers likewise, never a traceback."""
    import json

    from train.datasets import load_coco

    root = write_voc_dataset(tmp_path / "d", images=3)
    xml = (root / "labels" / "000.xml").read_text()
    (root / "labels" / "000.xml").write_text(re.sub(r"<xmin>[^<]*</xmin>", "<xmin>nan</xmin>", xml, count=1))
    (root / "labels" / "001.xml").write_text((root / "labels" / "001.xml").read_text()
                                             .replace("<width>160</width>", "<width>320</width>"))
    dataset = load_voc(root, ["box", "disc"])
    problems = [str(i) for i in dataset.issues]
    assert any("000.xml: object 0: <bndbox> [nan," in p and "is not finite (left out)" in p for p in problems)
    assert any("001.jpg: the annotation's size 320x128 is not the picture's (about 160x128)" in p for p in problems)
    assert len(dataset.samples) == 2 and not any(s.image.endswith("001.jpg") for s in dataset.samples)
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": str(root / "images/002.jpg"), "width": 160, "height": 128}],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [{"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 1, "bbox": ["a", 1, 2, 3]},
                        {"image_id": 1, "category_id": 1, "bbox": [1, 1, float("nan"), 3]},
                        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]}]}))
    dataset = load_coco(coco, None, ["box"])
    problems = [str(i) for i in dataset.issues]
    assert sum("is not 4 numbers x, y, w, h (left out)" in p for p in problems) == 2
    assert any("annotations[2]: box [1.0, 1.0, nan, 3.0] empty or outside" in p for p in problems)
    assert dataset.samples[0].boxes.tolist() == [[10, 10, 30, 30]]


def test_several_sources_map_their_classes_and_are_held_out_each_on_its_own(tmp_path):
    """Two data sets in one training: a VOC set (box, disc) and a COCO set calling its boxes `square` and
    holding a class the model leaves out; each source split by itself, every sample knowing where it is from."""
    import json

    from train.config import SourceConfig
    from train.datasets import split_sources
    pytest.importorskip("pycocotools")
    from train.evaluate import evaluate_sources

    voc = write_voc_dataset(tmp_path / "voc", images=10)
    other = load_voc(write_voc_dataset(tmp_path / "other", images=8, seed=3), ["box", "disc"])
    images, annotations = [], []
    for i, sample in enumerate(other.samples):
        images.append({"id": i, "file_name": sample.image, "width": sample.width, "height": sample.height})
        for box, label in zip(sample.boxes.tolist(), sample.labels.tolist()):
            annotations.append({"image_id": i, "category_id": label + 1,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    (tmp_path / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 1, "name": "square"}, {"id": 2, "name": "disc"}]}))
    sources = [SourceConfig(name="cplid-like", path=str(voc), format="voc"),
               SourceConfig(name="field", path=str(tmp_path / "coco.json"), format="coco",
                            class_map={"square": "box", "disc": None}, val_fraction=0.5)]
    train, val = split_sources(sources, ["box", "disc"], 0.2, seed=1)
    parts = {name: part.samples for name, part in val.by_source().items()}
    assert len(parts["cplid-like"]) == 2 and len(parts["field"]) == 4  # 20% of 10, 50% of 8
    assert len(train.samples) + len(val.samples) == 18
    field = [s for s in train.samples + val.samples if s.source == "field"]
    squares = sum(int((s.labels == 0).sum()) for s in other.samples)
    assert sum(len(s.labels) for s in field) == squares and all((s.labels == 0).all() for s in field)
    assert any("[field] unknown class 'disc' (left out)" in str(i) for i in train.issues)
    # Evaluated over all pictures and per source: ground truth as predictions gives 1.0 on each.
    results = [{"image_id": i, "category_id": int(label) + 1, "score": 0.9,
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
               for i, s in enumerate(val.samples) for b, label in zip(s.boxes, s.labels)]
    metrics = evaluate_sources(val, results)
    assert set(metrics["per_source"]) == {"cplid-like", "field"}
    assert metrics["per_source"]["field"]["per_class_AP50"]["box"] == pytest.approx(1.0)
    assert metrics["per_source"]["field"]["images"] == 4


def test_held_out_of_a_config_is_what_its_training_left_out(tmp_path):
    """`inspector eval --held-out-of` and the benches evaluate exactly the pictures the training config's split
    kept aside: its data read from paths relative to the config, with its fraction and seed."""
    import yaml

    from train.datasets import held_out_of, split_sources
    from train.config import SourceConfig

    voc = write_voc_dataset(tmp_path / "data" / "voc", images=20)
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "train.yaml"
    config.write_text(yaml.safe_dump({"cfg": "yolov4-tiny", "data": {
        "classes": ["box", "disc"], "sources": [{"name": "voc", "path": "../data/voc", "format": "voc"}],
        "val_fraction": 0.25, "split_seed": 4}}))
    held = held_out_of(config, ("box", "disc"))
    train, _ = split_sources([SourceConfig(name="voc", path=str(voc), format="voc")], ["box", "disc"], 0.25, 4)
    assert len(held.samples) == 5 and {s.source for s in held.samples} == {"voc"}
    assert not {s.image for s in held.samples} & {s.image for s in train.samples}
    assert len(train.samples) + len(held.samples) == 20
