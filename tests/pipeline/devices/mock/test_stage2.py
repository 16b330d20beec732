"""The mock device's second stage: crops cut where the host's own rule puts the parents, from the full-resolution
NV12 frame, letterboxed and AIPP-converted like the first stage's input, batched across frames and cameras."""

import numpy as np
import pytest

import models.runtime
from models.crops import CropSettings, crop_regions
from models.darknet_cfg import parse_cfg
from models.letterbox import letterbox_geometry, preprocess_bgr
from models.spec import ModelSpec
from models.cascade import CascadeRule, Decoding
from pipeline.devices.base import Stage2Settings
from pipeline.devices.mock.stage2 import CropInference
from pipeline.devices.nv12 import crop_planes, planes, rgb_to_nv12
from pipeline.devices.mock.source import DecodedFrame
from pipeline.types import FrameInfo

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

CROPS = {"parents": ["insulator"], "margin": 0.25, "max_aspect": 1.5, "overlap": 0.25, "min_side": 32}


class RecordingSession:
    """Stands in for the second model's runtime session: records every batch, answers one box per image."""

    def __init__(self, calls):
        self.calls = calls

    def run(self, batch):
        self.calls.append(batch.copy())
        boxes = np.tile(np.asarray([[[10.0, 20.0, 30.0, 40.0]]], np.float32), (len(batch), 1, 1))
        return boxes, np.full((len(batch), 1, 1), 0.8, np.float32)


@pytest.fixture
def calls(monkeypatch):
    recorded = []
    monkeypatch.setattr(models.runtime, "open_session", lambda *a, **k: RecordingSession(recorded))
    return recorded


def specs():
    spec1 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=2, height=320, width=320), ["insulator", "defect"])
    spec2 = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=1, height=96, width=96), ["defect"], crops=CROPS)
    return spec1, spec2


def picture(bar):
    """640x360 RGB: a smooth gradient (so a misplaced crop shows) with a blue bar."""
    yy, xx = np.mgrid[0:360, 0:640]
    rgb = np.stack([xx * 255 // 639, yy * 255 // 359, (xx + yy) * 255 // 998], axis=-1).astype(np.uint8)
    x1, y1, x2, y2 = bar
    rgb[y1:y2, x1:x2] = (40, 60, 200)
    return rgb


def frame(rgb, camera="a", channel=0):
    info = FrameInfo(camera, channel, 0, None, 0.0, None, rgb.shape[1], rgb.shape[0])
    return DecodedFrame(info, rgb_to_nv12(rgb))


def stage1_outputs(boxes_camera, scores, width=640, height=360):
    """The first model's decoded outputs for a batch: the given objects, in model pixels."""
    geometry = letterbox_geometry(width, height, 320, 320)
    out_boxes = np.zeros((len(boxes_camera), 4, 4), np.float32)
    out_scores = np.zeros((len(boxes_camera), 4, 2), np.float32)
    for i, (boxes, frame_scores) in enumerate(zip(boxes_camera, scores)):
        for k, (box, score) in enumerate(zip(boxes, frame_scores)):
            out_boxes[i, k] = geometry.to_model(np.asarray([box], np.float32))[0]
            out_scores[i, k] = score
    return [out_boxes, out_scores], [geometry] * len(boxes_camera)


def cascade(max_crops=16):
    spec1, spec2 = specs()
    settings = Stage2Settings("unused", CascadeRule((0,), Decoding((0.3, 0.3), 0.45, 100), Decoding((0.3,), 0.45, 100),
                                                    max_crops))
    return CropInference(spec1, spec2, "unused.onnx", settings, None, 1, 1)


def test_crops_are_cut_where_the_host_puts_the_parent_and_look_like_training_input(calls):
    bar = (100, 150, 400, 200)  # 300 x 50: a long parent, cut into tiles
    rgb = picture(bar)
    outputs, geometries = stage1_outputs([[bar]], [[(0.9, 0.0)]])
    stage1, crops, skipped = cascade().run([frame(rgb)], geometries, outputs)
    parent = geometries[0].to_camera(geometries[0].to_model(np.asarray([bar], np.float32)), 640, 360)[0]
    expected = [tuple(int(v) for v in r) for r in crop_regions(parent, 640, 360, CropSettings(0.25, 1.5, 0.25, 32))]
    assert [c.rect_camera for c in crops[0]] == expected and len(expected) > 2 and skipped == [0]
    assert len(calls) == 1 and len(calls[0]) >= len(expected)  # one batch: every crop of the frame
    _, spec2 = specs()
    for j, crop in enumerate(crops[0]):
        x1, y1, x2, y2 = crop.rect_camera
        # Training and evaluation cut the same rectangle from the RGB picture and letterbox it on the CPU.
        reference, geometry = preprocess_bgr(np.ascontiguousarray(rgb[y1:y2, x1:x2, ::-1]), spec2)
        assert geometry == crop.geometry
        valid = (slice(None), slice(0, geometry.resized_height - 2), slice(0, geometry.resized_width - 2))
        difference = np.abs(calls[0][j][valid] - reference[valid])
        # NV12 (4:2:0 chroma, limited range) and two resizes against one: 95% within 3 levels (the rest: chroma
        # on the bar's hard edges) ...
        assert difference.mean() < 3 / 255 and np.percentile(difference, 95) <= 3 / 255, j
        # ... while the same rectangle 4 px off is visibly another picture.
        shifted, _ = preprocess_bgr(np.ascontiguousarray(rgb[y1 + 4:y2 + 4, x1 + 4:x2 + 4, ::-1]), spec2)
        assert np.percentile(np.abs(calls[0][j][valid] - shifted[valid]), 95) > 3 * np.percentile(difference, 95)
        # Its parent is the frame's first detection, decoded once here and handed on with the frame.
        assert crop.parent == 0 and crop.tensors[0].shape == (1, 4)
    assert stage1[0].scores.tolist() == [pytest.approx(0.9)] and np.allclose(stage1[0].boxes_xyxy_camera[0], parent)


def test_crops_of_several_cameras_share_a_batch_and_come_back_to_their_frames(calls):
    bar_a, bar_b = (100, 150, 160, 190), (300, 50, 340, 100)  # compact parents: one crop each
    frames = [frame(picture(bar_a), "a", 0), frame(picture(bar_b), "b", 1), frame(picture(bar_b), "c", 2)]
    outputs, geometries = stage1_outputs([[bar_a], [bar_b], []], [[(0.9, 0)], [(0.8, 0)], []])
    stage1, crops, skipped = cascade().run(frames, geometries, outputs)
    assert len(calls) == 1 and len(calls[0]) == 2  # gear 2: one crop of a, one of b, nothing of c
    assert [len(c) for c in crops] == [1, 1, 0] and skipped == [0, 0, 0] and [len(d) for d in stage1] == [1, 1, 0]
    assert crops[0][0].rect_camera[0] < bar_a[0] < bar_a[2] < crops[0][0].rect_camera[2]
    assert crops[1][0].rect_camera[1] < bar_b[1] < bar_b[3] < crops[1][0].rect_camera[3]


def test_only_parent_classes_above_the_threshold_are_cropped_and_max_crops_is_kept(calls):
    bar = (100, 150, 400, 200)
    outputs, geometries = stage1_outputs([[bar, (500, 20, 540, 60), (420, 300, 460, 340)]],
                                         [[(0.9, 0.0), (0.0, 0.95), (0.2, 0.0)]])  # a defect; a weak insulator
    stage1, crops, skipped = cascade(max_crops=3).run([frame(picture(bar))], geometries, outputs)
    rects = [c.rect_camera for c in crops[0]]
    assert len(rects) == 3 and skipped[0] > 0  # the long bar alone gives more tiles than that
    assert all(r[0] < 420 for r in rects)  # nothing from the defect's or the weak insulator's place
    # The defect is reported (best first), the weak insulator is not; the crops name the bar, index 1.
    assert stage1[0].class_ids.tolist() == [1, 0] and {c.parent for c in crops[0]} == {1}


def test_nv12_crop_keeps_the_chroma_of_its_pixels():
    rgb = picture((0, 0, 2, 2))
    nv12 = rgb_to_nv12(rgb)
    y, uv = crop_planes(nv12, (100, 50, 164, 90))
    full_y, full_uv = planes(nv12, 640, 360)
    assert np.array_equal(y, full_y[50:90, 100:164]) and np.array_equal(uv, full_uv[25:45, 50:82])
    assert y.shape == (40, 64) and uv.shape == (20, 32, 2)
    with pytest.raises(ValueError, match="even"):
        crop_planes(nv12, (101, 50, 165, 90))


def test_the_aipp_of_a_batch_of_crops_is_each_crops_own_exactly(calls):
    bar = (100, 150, 400, 200)
    rgb = picture(bar)
    outputs, geometries = stage1_outputs([[bar]], [[(0.9, 0.0)]])
    inference = cascade()
    _, crops, _ = inference.run([frame(rgb)], geometries, outputs)
    nv12 = frame(rgb).nv12
    for j, crop in enumerate(crops[0]):
        plan = inference.planner.plan([o[0] for o in outputs], geometries[0], 640, 360)[1][j]
        alone = inference.aipp.apply_nv12(inference.planner.cut(nv12, plan), 96, 96)
        np.testing.assert_array_equal(calls[0][j], alone)
