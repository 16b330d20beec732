"""Letterbox geometry shared by training, the mock device and the host side, so the three cannot drift.

Placement follows the ModelSpec (`top-left` by default, what DVPP's Resizer_KeepAspectRatio_Fit produces).
The scaled size is DVPP's (MxpiImageResize.cpp GetResizedOriginalSize, Ascend/VisionSDK f156edc): the longer
side fills the model input, the other is `lround(side * model / longer)` aligned UP to an even number (NV12
chroma is subsampled 2x2), never past the model input.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class LetterboxGeometry:
    """How camera pixels map to model-input pixels: model = camera * scale + pad."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_width: int
    resized_height: int
    model_width: int
    model_height: int

    def to_camera(self, boxes_model_xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        boxes = np.asarray(boxes_model_xyxy, dtype=np.float32).copy()
        boxes[:, 0::2] = np.clip((boxes[:, 0::2] - self.pad_x) / self.scale_x, 0, width)
        boxes[:, 1::2] = np.clip((boxes[:, 1::2] - self.pad_y) / self.scale_y, 0, height)
        return boxes

    def to_model(self, boxes_camera_xyxy: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes_camera_xyxy, dtype=np.float32).copy()
        boxes[:, 0::2] = boxes[:, 0::2] * self.scale_x + self.pad_x
        boxes[:, 1::2] = boxes[:, 1::2] * self.scale_y + self.pad_y
        return boxes


def _lround(value: float) -> int:
    """C's lround: halves away from zero (Python's round goes to even)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def _even_up(value: int) -> int:
    return (value + 1) // 2 * 2


def letterbox_geometry(width: int, height: int, model_width: int, model_height: int,
                       placement: str = "top-left") -> LetterboxGeometry:
    if min(width, height, model_width, model_height) <= 0:
        raise ValueError(f"letterbox of a {width}x{height} picture into {model_width}x{model_height}: sizes must be "
                         f"positive")
    if model_height * width > height * model_width:  # the width fills the model input
        resized_w, resized_h = model_width, _lround(height * model_width / width)
    else:
        resized_w, resized_h = _lround(width * model_height / height), model_height
    resized_w = max(2, min(model_width, _even_up(resized_w)))
    resized_h = max(2, min(model_height, _even_up(resized_h)))
    if placement == "center":
        pad_x, pad_y = (model_width - resized_w) // 4 * 2, (model_height - resized_h) // 4 * 2
    else:
        pad_x = pad_y = 0
    return LetterboxGeometry(resized_w / width, resized_h / height, pad_x, pad_y, resized_w, resized_h,
                             model_width, model_height)


def letterbox_image(image: np.ndarray, geometry: LetterboxGeometry, pad_value: int) -> np.ndarray:
    """An HxWx3 uint8 picture placed into the model input (training and offline reference path)."""
    import cv2

    out = np.full((geometry.model_height, geometry.model_width, image.shape[2]), pad_value, dtype=np.uint8)
    resized = cv2.resize(image, (geometry.resized_width, geometry.resized_height), interpolation=cv2.INTER_LINEAR)
    out[geometry.pad_y:geometry.pad_y + geometry.resized_height,
        geometry.pad_x:geometry.pad_x + geometry.resized_width] = resized
    return out


def preprocess_bgr(image_bgr: np.ndarray, spec) -> tuple[np.ndarray, LetterboxGeometry]:
    """A BGR picture -> the network input (3, H, W) float32 as training saw it (letterbox, colour order,
    normalisation from the ModelSpec), and the geometry to map boxes back. The CPU path; the NPU gets NV12
    and does the same with AIPP."""
    geometry = letterbox_geometry(image_bgr.shape[1], image_bgr.shape[0], spec.input_width, spec.input_height,
                                  spec.letterbox.placement)
    picture = letterbox_image(image_bgr, geometry, spec.letterbox.pad_value)
    if spec.normalisation.colour == "RGB":
        picture = picture[:, :, ::-1]
    tensor = (picture.astype(np.float32) - np.asarray(spec.normalisation.mean, np.float32)) / \
        np.asarray(spec.normalisation.std, np.float32)
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)), geometry
