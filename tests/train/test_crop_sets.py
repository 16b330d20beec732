"""The second stage's training set: crops around parents, children mapped in, split by source picture."""

import json
import pathlib

import cv2
import numpy as np
import pytest

from models.crops import CropSettings, crop_regions
from train.config import TrainConfig
from train.crop_sets import build_crop_sets, source_split
from train.testing import write_cascade_dataset

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def config(root, out, **crops):
    return TrainConfig.model_validate({
        "data": {"path": str(root), "classes": ["fault"], "val_fraction": 0.25, "split_seed": 0,
                 "crops": {"parents": ["string"], "margin": 0.25, "jitter": 0.0, "negatives_per_positive": None}
                 | crops},
        "out": str(out)})


def test_crops_hold_the_children_and_the_pixels_of_the_source_picture(tmp_path):
    root = write_cascade_dataset(tmp_path / "data", images=12)
    cfg = config(root, tmp_path / "run")
    train, val = build_crop_sets(cfg)
    train_src, val_src = source_split(cfg)
    # Held out by source picture, exactly as the first stage's split: no picture gives crops to both sets.
    stem = lambda s: pathlib.Path(s.image).name.split("_")[1]
    assert {stem(s) for s in train.samples} <= {pathlib.Path(s.image).stem for s in train_src.samples}
    assert {stem(s) for s in val.samples} == {pathlib.Path(s.image).stem for s in val_src.samples}
    assert len(val_src.samples) == 3
    # Every crop is the deployed crop geometry: each source picture's string cut with the same settings.
    for dataset, sources in ((train, train_src), (val, val_src)):
        expected = sum(len(crop_regions(s.boxes[s.labels == 0][0], s.width, s.height, CropSettings(margin=0.25)))
                       for s in sources.samples)
        assert len(dataset.samples) == expected
    # A fault lands in its crop's pixels: the crop's box holds the fault's red, in the crop's coordinates.
    with_fault = [s for s in train.samples + val.samples if len(s.labels)]
    assert with_fault and all(s.labels.tolist() == [0] * len(s.labels) for s in with_fault)
    for sample in with_fault:
        picture = cv2.imread(sample.image)
        assert picture.shape[:2] == (sample.height, sample.width)
        x1, y1, x2, y2 = sample.boxes[0].astype(int)
        inside = picture[y1 + 1:y2 - 1, x1 + 1:x2 - 1].reshape(-1, 3)
        assert np.abs(inside.astype(int) - (30, 30, 230)).max() <= 2, sample.image  # PNG: lossless
    # Faults of the held-out pictures are all reachable: each is the target of at least one crop.
    faults = sum(int((s.labels == 1).sum()) for s in val_src.samples)
    assert faults and sum(len(s.labels) > 0 for s in val.samples) >= faults


def test_negatives_are_sampled_in_training_only_and_the_crops_are_reused(tmp_path):
    root = write_cascade_dataset(tmp_path / "data", images=12)
    full_train, full_val = build_crop_sets(config(root, tmp_path / "all"))
    cfg = config(root, tmp_path / "run", negatives_per_positive=0.5)
    train, val = build_crop_sets(cfg)
    positives = sum(len(s.labels) > 0 for s in train.samples)
    assert positives == sum(len(s.labels) > 0 for s in full_train.samples)
    assert len(train.samples) - positives == round(0.5 * positives) < len(full_train.samples) - positives
    assert len(val.samples) == len(full_val.samples)  # the held-out crops are never reduced
    files = sorted((tmp_path / "run" / "crops" / "train").glob("*.png"))
    assert len(files) == len(train.samples)  # only what is used is written
    # The same sources and settings: reused, nothing cut again; other settings: cut again, old crops gone.
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again, _ = build_crop_sets(cfg)
    assert [s.image for s in again.samples] == [s.image for s in train.samples]
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files)
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(again.samples, train.samples))
    wider, _ = build_crop_sets(config(root, tmp_path / "run", negatives_per_positive=0.5, margin=0.5))
    manifest = json.loads((tmp_path / "run" / "crops" / "crops.json").read_text())
    assert manifest["settings"]["margin"] == 0.5
    assert len(list((tmp_path / "run" / "crops" / "train").glob("*.png"))) == len(wider.samples)


def test_a_second_stage_is_cut_from_several_sources_each_mapped_and_held_out_on_its_own(tmp_path):
    write_cascade_dataset(tmp_path / "a", images=8, seed=1)
    write_cascade_dataset(tmp_path / "b", images=8, seed=2)
    cfg = TrainConfig.model_validate({
        "data": {"classes": ["fault", "crack"], "val_fraction": 0.25, "split_seed": 0,
                 "sources": [{"name": "a", "path": str(tmp_path / "a")},
                             {"name": "b", "path": str(tmp_path / "b"), "class_map": {"fault": "crack"}}],
                 "crops": {"parents": ["string"], "jitter": 0.0, "negatives_per_positive": None}},
        "out": str(tmp_path / "run")})
    train, val = build_crop_sets(cfg)
    _, val_src = source_split(cfg)
    assert sorted(s.source for s in val_src.samples) == ["a", "a", "b", "b"]  # 25% of each source
    for dataset in (train, val):
        labels = {source: {int(l) for s in part.samples for l in s.labels}
                  for source, part in dataset.by_source().items()}
        assert labels == {"a": {0}, "b": {1}}  # b's faults are cracks, in b's crops only
    # The reused crops keep their source (the per-source figures of the second stage read it).
    again, _ = build_crop_sets(cfg)
    assert [s.source for s in again.samples] == [s.source for s in train.samples]


def test_training_crops_are_cut_from_jittered_boxes(tmp_path):
    root = write_cascade_dataset(tmp_path / "data", images=8)
    exact, _ = build_crop_sets(config(root, tmp_path / "a"))
    moved, _ = build_crop_sets(config(root, tmp_path / "b", jitter=0.3))
    size = lambda d: sorted((s.width, s.height) for s in d.samples)
    assert size(exact) != size(moved)


def test_a_label_fraction_drops_whole_source_pictures_before_the_crops_are_cut(tmp_path):
    """A quarter of the training pictures with a fault are kept (with every box in them), the pictures without
    one all stay, and the held-out crops are the same as with every label."""
    root = write_cascade_dataset(tmp_path / "data", images=24)
    full = config(root, tmp_path / "full")
    quarter = full.model_copy(update={"out": str(tmp_path / "quarter"), "data": full.data.model_copy(
        update={"label_fraction": {"fault": 0.25}})})
    train_src, _ = source_split(full)
    fault = source_split(full)[0].class_names.index("fault")
    with_fault = {pathlib.Path(s.image).stem for s in train_src.samples if (s.labels == fault).any()}
    without = {pathlib.Path(s.image).stem for s in train_src.samples} - with_fault
    stem = lambda s: pathlib.Path(s.image).name.split("_")[1]
    (train_full, val_full), (train_quarter, val_quarter) = build_crop_sets(full), build_crop_sets(quarter)
    kept = {stem(s) for s in train_quarter.samples}
    assert len(kept & with_fault) == round(len(with_fault) * 0.25) and without <= kept
    assert {stem(s) for s in train_full.samples} == with_fault | without
    assert [s.boxes.tolist() for s in val_quarter.samples] == [s.boxes.tolist() for s in val_full.samples]
    manifest = json.loads((tmp_path / "quarter" / "crops" / "crops.json").read_text())
    assert manifest["counts"]["train"]["pictures"] == len(without) + round(len(with_fault) * 0.25)


def test_training_tiles_vary_in_size_and_the_held_out_tiles_keep_max_side(tmp_path):
    """max_side 0.15 of 240 px caps a tile at 36 px (38 after the outward rounding to even pixels); with
    tile_jitter 0.5 a training parent's cap is 24-54 px, so some tiles exceed it and some are cut smaller than
    any fixed tile (the bars with their margin are 30-45 px wide)."""
    root = write_cascade_dataset(tmp_path / "data", images=12)
    fixed_train, fixed_val = build_crop_sets(config(root, tmp_path / "fixed", max_side=0.15, min_side=16))
    train, val = build_crop_sets(config(root, tmp_path / "jittered", max_side=0.15, min_side=16,
                                                 tile_jitter=0.5))
    side = lambda d: [max(s.width, s.height) for s in d.samples]
    assert max(side(fixed_train)) <= 38 < max(side(train))
    assert min(side(train)) < min(side(fixed_train))
    assert [(s.width, s.height, s.boxes.tolist()) for s in val.samples] == \
        [(s.width, s.height, s.boxes.tolist()) for s in fixed_val.samples]


def test_tile_jitter_needs_a_tile_size_to_vary(tmp_path):
    with pytest.raises(ValueError, match="tile_jitter: needs max_side"):
        config(tmp_path, tmp_path / "run", max_side=None, tile_jitter=0.5)


def test_copies_cut_each_training_parent_again_from_other_boxes_and_the_held_out_crops_once(tmp_path):
    root = write_cascade_dataset(tmp_path / "data", images=12)
    once_train, once_val = build_crop_sets(config(root, tmp_path / "once", jitter=0.2))
    train, val = build_crop_sets(config(root, tmp_path / "thrice", jitter=0.2, copies=3))
    name = lambda s: pathlib.Path(s.image).stem
    parent = lambda s: name(s).split("_t")[0]  # <picture>_<stem>_p<parent>
    cuts = {c: {parent(s) for s in train.samples if name(s).endswith(f"_c{c}") == bool(c)} for c in range(3)}
    assert cuts[0] == {parent(s) for s in once_train.samples} and cuts[1] == cuts[0] and cuts[2] == cuts[0]
    # Each cut from its own jittered box: the tiles of one parent differ from one cut to the next.
    tiles = lambda c: sorted((parent(s), s.width, s.height) for s in train.samples
                             if name(s).endswith(f"_c{c}") == bool(c))
    assert tiles(0) != tiles(1) and tiles(1) != tiles(2)
    # The held-out crops are the exact boxes' tiles, once.
    assert [(name(s), s.boxes.tolist()) for s in val.samples] == \
        [(name(s), s.boxes.tolist()) for s in once_val.samples]


def test_copies_without_jitter_are_refused(tmp_path):
    with pytest.raises(ValueError, match="copies: 3 identical cuts"):
        config(tmp_path, tmp_path / "run", copies=3)
