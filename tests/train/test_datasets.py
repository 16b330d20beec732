import pytest

from train.datasets import load_voc, split
from train.testing import write_voc_dataset


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
