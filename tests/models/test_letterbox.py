"""The letterbox geometry is DVPP's (MxpiImageResize.cpp GetResizedOriginalSize): the longer side fills the
model input, the other is C's lround of the exact size, aligned up to even. Training, evaluation, the mock and
the host's box mapping all use this one function."""

import pytest

from models.letterbox import letterbox_geometry

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


@pytest.mark.parametrize("camera, model, resized", [
    ((1920, 1080), (416, 416), (416, 234)),
    ((640, 480), (320, 320), (320, 240)),
    ((1000, 333), (416, 416), (416, 140)),  # 138.53 -> lround 139 -> even 140 (flooring to even gave 138)
    ((333, 1000), (416, 416), (140, 416)),
    ((640, 101), (320, 320), (320, 52)),    # 50.5 -> lround 51 (halves away from zero) -> 52; round() gives 50
    ((1280, 720), (608, 320), (570, 320)),  # the height fills a non-square input: 568.9 -> 569 -> 570
])
def test_dvpp_sizes(camera, model, resized):
    geometry = letterbox_geometry(*camera, *model)
    assert (geometry.resized_width, geometry.resized_height) == resized
    assert (geometry.pad_x, geometry.pad_y) == (0, 0)  # top-left, as Resizer_KeepAspectRatio_Fit places it


def test_boxes_map_back_through_the_same_geometry():
    import numpy as np

    geometry = letterbox_geometry(1000, 333, 416, 416)
    box = np.array([[100.0, 50.0, 900.0, 300.0]], np.float32)
    assert np.allclose(geometry.to_camera(geometry.to_model(box), 1000, 333), box, atol=1e-3)
