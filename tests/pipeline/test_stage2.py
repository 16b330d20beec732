"""The cascade in the daemon: the second model's config checked, its crops' detections in camera pixels with their
parents, its classes reported in the place of the first model's of the same name in lines, zones and events (the
first model's detections of them merged, or left out)."""

import json
import shutil

import numpy as np
import pytest

from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from pipeline.stage2 import Cascade
from pipeline.config import ConfigError, parse_config
from pipeline.daemon import Daemon
from pipeline.runplan import load_specs
from pipeline.types import CropOutput, Detections, FrameInfo, FrameResult
from tests.support.daemon import require_demo_model



@pytest.fixture(scope="module")
def stage2_dir(stage2_model_dir):
    return stage2_model_dir


def config(tmp_path, model, stage2, **overrides):
    from tests.support.clips import DEMO_CLIP

    data = {"cameras": [{"id": "a", "url": str(DEMO_CLIP), "max_frames": 12}], "model": str(model),
            "stage2": stage2, "output": {"directory": str(tmp_path / "out")}, "http": {"enabled": False}}
    data.update(overrides)
    return parse_config(data)


def problems_of(cfg) -> str:
    found = []
    load_specs(cfg, "daemon.yaml", found)
    return "\n".join(found)


def test_the_second_model_is_checked_against_the_config_and_the_first(tmp_path, tiny_model_dir, stage2_dir):
    assert problems_of(config(tmp_path, tiny_model_dir, {"model": str(stage2_dir)})) == ""
    # A first-stage model is not a second stage.
    found = problems_of(config(tmp_path, tiny_model_dir, {"model": str(tiny_model_dir)}))
    assert "stage2.model: " in found and "is not a second-stage model (its manifest has no crops)" in found
    found = problems_of(config(tmp_path, tiny_model_dir, {"model": str(stage2_dir), "parents": ["tower"],
                                                          "thresholds": {"per_class": {"insulator": 0.5}}}))
    assert "stage2.parents: 'tower' is not a class of the first model (insulator, defect)" in found
    assert "stage2.thresholds.per_class.insulator: not a class of the second model (defect)" in found
    # The Ascend device runs OMs: an export that was never converted is named (the owner and mode of an OM are
    # checked when the device starts, as the user it runs as: tests/pipeline/devices).
    found = problems_of(config(tmp_path, tiny_model_dir, {"model": str(stage2_dir)}, device="ascend"))
    assert f"stage2.model: {stage2_dir / 'model.om'}: missing: the Ascend device runs the OM" in found
    # A changed model file is caught by the checksum beside it, naming the second model.
    copy = tmp_path / "copy"
    shutil.copytree(stage2_dir, copy)
    with open(copy / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    assert "stage2.model: " in problems_of(config(tmp_path, tiny_model_dir, {"model": str(copy)}))
    with pytest.raises(ConfigError, match="stage2.model"):
        Daemon(config(tmp_path, tiny_model_dir, {"model": str(copy)}))


@pytest.mark.parametrize("shared", ["merge", "second"])
def test_second_stage_detections_come_back_to_the_frame_with_their_parent(tiny_model_dir, stage2_dir, shared):
    spec1, spec2 = ModelSpec.load(tiny_model_dir), ModelSpec.load(stage2_dir)
    stage2 = {"model": str(stage2_dir), "thresholds": {"score": 0.5}}
    if shared != "merge":  # the default
        stage2["shared_classes"] = shared
    cfg = parse_config({"cameras": [{"id": "a", "url": "x.mp4"}], "model": str(tiny_model_dir), "stage2": stage2})
    cascade = Cascade.create(cfg, spec1, spec2)
    assert cascade.names == ("insulator", "defect")  # `defect` reported in the second model's place
    first = Detections(np.asarray([[100, 100, 400, 160], [500, 10, 520, 30]], np.float32),
                       np.asarray([0.9, 0.7], np.float32), np.asarray([0, 1], np.int64))
    rect = (90, 86, 170, 174)  # an 80 x 88 crop at (90, 86)
    geometry = letterbox_geometry(80, 88, 96, 96)
    # One candidate at (12, 24)-(36, 48) model pixels scoring 0.8, one below the threshold.
    boxes = np.asarray([[12, 24, 36, 48], [0, 0, 5, 5]], np.float32)
    scores = np.asarray([[0.8], [0.2]], np.float32)
    crop = CropOutput(rect, 0, geometry, (boxes, scores))  # cut around the first detection
    info = FrameInfo("a", 0, 0, None, 0.0, None, 640, 360)
    result = FrameResult(info, letterbox_geometry(640, 360, 320, 320), (), 1, 1, crops=(crop,))
    combined = cascade.combine(first, result)
    expected = geometry.to_camera(boxes[:1], 80, 88)[0] + np.asarray([90, 86, 90, 86], np.float32)
    assert np.allclose(combined.boxes_xyxy_camera[1], expected)
    lines = combined.to_json(cascade.names)
    assert lines[0] == {"class": "insulator", "score": 0.9, "box": [100.0, 100.0, 400.0, 160.0]}
    assert lines[1]["class"] == "defect" and lines[1]["parent"] == 0 and lines[1]["score"] == 0.8
    if shared == "second":  # the first model's defect, outside every crop, is not reported
        assert combined.class_ids.tolist() == [0, 1] and combined.parents.tolist() == [-1, 0]
    else:  # it is, after the second model's (its score is lower), without a parent
        assert combined.class_ids.tolist() == [0, 1, 1] and combined.parents.tolist() == [-1, 0, -1]
        assert lines[2] == {"class": "defect", "score": 0.7, "box": [500.0, 10.0, 520.0, 30.0]}


@pytest.mark.slow
def test_the_daemon_runs_the_cascade_on_the_demo_clip(tmp_path, stage2_dir):
    model = require_demo_model()
    cfg = config(tmp_path, model, {"model": str(stage2_dir), "thresholds": {"score": 0.02}, "max_crops": 8,
                                   "shared_classes": "second"},
                 cameras=[{"id": "a", "url": str(model.parent / "insulators.mp4"), "max_frames": 40,
                           "zones": [{"name": "faults", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                      "classes": ["defect"]}]}],
                 alarm={"min_hits": 1, "lost_after_s": 0.5, "cooldown_s": 0})
    daemon = Daemon(cfg)
    summary = daemon.run(__import__("threading").Event())
    assert summary.cameras[0].processed == 40
    # Two or three strings a picture, 5-12 tiles each: more than 8 crops, the rest counted, not silently lost.
    assert daemon.frames.crops_skipped > 0
    assert f'inspector_crops_skipped_total{{camera="a"}} {daemon.frames.crops_skipped}.0' in \
        daemon.metrics.render()[0].decode()
    lines = [json.loads(l) for l in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()]
    children = [(line, d) for line in lines for d in line["detections"] if "parent" in d]
    assert children, "random second-stage weights at score 0.02 find something in 40 frames of insulators"
    from models.crops import crop_regions

    spec2 = ModelSpec.load(stage2_dir)
    for line, child in children:
        parent = line["detections"][child["parent"]]
        assert parent["class"] == "insulator" and child["class"] == "defect"
        # Inside the crops of its parent: the second model only ever saw those pixels (to one alignment step:
        # the line's parent box is rounded to 0.01 px, which can move an even crop edge by 2 px).
        rects = crop_regions(parent["box"], line["width"], line["height"], spec2.crop_settings)
        x1, y1, x2, y2 = child["box"]
        assert ((rects[:, 0] - 2 <= x1) & (rects[:, 1] - 2 <= y1) & (x2 <= rects[:, 2] + 2)
                & (y2 <= rects[:, 3] + 2)).any(), (child, parent)
    # No first-stage `defect` remains (shared_classes: second): every defect has a parent.
    assert all("parent" in d for line in lines for d in line["detections"] if d["class"] == "defect")
    events = [json.loads(l) for l in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert any(e["class"] == "defect" and e["zone"] == "faults" for e in events)
