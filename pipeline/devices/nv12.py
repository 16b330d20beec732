"""NV12 buffers as DVPP produces them, for both devices (the mock decodes into them; the Ascend device cuts
the second stage's crops from the SDK's): width aligned up to 16, height up to 2, the valid picture top-left.

Layout of a buffer of `aligned_w x aligned_h`: the Y plane (aligned_h rows of aligned_w bytes), then the
interleaved UV plane (aligned_h / 2 rows of aligned_w bytes, U first). Shape (aligned_h * 3 / 2, aligned_w).
"""

from __future__ import annotations

import cv2
import numpy as np

from models.letterbox import LetterboxGeometry

WIDTH_ALIGN = 16
HEIGHT_ALIGN = 2


def align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def empty_nv12(width: int, height: int, y: int = 0, uv: int = 128) -> np.ndarray:
    aligned_w, aligned_h = align(width, WIDTH_ALIGN), align(height, HEIGHT_ALIGN)
    buffer = np.empty((aligned_h * 3 // 2, aligned_w), dtype=np.uint8)
    buffer[:aligned_h] = y
    buffer[aligned_h:] = uv
    return buffer


def planes(buffer: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of the valid Y (h, w) and UV (h/2, w/2, 2) pictures of an aligned buffer."""
    aligned_h = buffer.shape[0] * 2 // 3
    y = buffer[:height, :width]
    uv = buffer[aligned_h:aligned_h + height // 2, :width].reshape(height // 2, width // 2, 2)
    return y, uv


def pack_nv12(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Valid planes (Y (h, w), UV (h/2, w/2, 2)) into a new aligned buffer."""
    height, width = y.shape
    buffer = empty_nv12(width, height)
    dst_y, dst_uv = planes(buffer, width, height)
    dst_y[...] = y
    dst_uv[...] = uv
    return buffer


def frame_to_nv12(frame) -> tuple[np.ndarray, int, int]:
    """A decoded PyAV VideoFrame -> (aligned NV12 buffer, width, height). H.264's usual yuv420p planes are
    copied straight into the aligned buffer (U and V interleaved, no colour conversion; ~15x faster than a
    swscale pass plus a copy, bit-identical); other pixel formats go to yuv420p through FFmpeg's swscale first.
    An odd width or height loses its last column or row (4:2:0 needs even sizes, as DVPP's output does)."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    width, height = frame.width // 2 * 2, frame.height // 2 * 2
    buffer = empty_nv12(width, height)
    dst_y, dst_uv = planes(buffer, width, height)
    y_plane, u_plane, v_plane = frame.planes
    dst_y[...] = np.frombuffer(y_plane, np.uint8).reshape(-1, y_plane.line_size)[:height, :width]
    u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:height // 2, :width // 2]
            for p in (u_plane, v_plane))
    dst_uv[...] = cv2.merge([u, v])  # interleaved by OpenCV: 2.5x faster than two strided numpy writes
    return buffer, width, height


def dvpp_background(red: float, green: float, blue: float) -> tuple:
    """The NV12 bytes (Y, U, V) DVPP fills the letterbox padding with for mxpi_imageresize's RGBValue: single
    precision, truncated (MxpiPluginsUtils.cpp SetImageBackground / SetImageUVValue, Ascend/VisionSDK f156edc)."""
    r, g, b = (np.float32(v) for v in (red, green, blue))
    y = np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
    u = np.float32(-0.169) * r - np.float32(0.331) * g + np.float32(0.500) * b + np.float32(128)
    v = np.float32(0.500) * r - np.float32(0.419) * g - np.float32(0.081) * b + np.float32(128)
    return int(y), int(u), int(v)


def letterbox_nv12(buffer: np.ndarray, width: int, height: int, geometry: LetterboxGeometry,
                   pad_y: int, pad_uv: int = 128) -> np.ndarray:
    """VPC resize with Resizer_KeepAspectRatio_Fit: luma and chroma scaled separately (bilinear), placed at
    the geometry's offset, the rest filled with the pad colour. Returns an aligned buffer of the model size."""
    out = empty_nv12(geometry.model_width, geometry.model_height, pad_y, pad_uv)
    aligned_h = out.shape[0] * 2 // 3
    letterbox_planes(*planes(buffer, width, height), geometry, out[:aligned_h], out[aligned_h:], pad_y, pad_uv,
                     filled=True)
    return out


def letterbox_planes(y: np.ndarray, uv: np.ndarray, geometry: LetterboxGeometry, out_y: np.ndarray,
                     out_uv: np.ndarray, pad_y: int, pad_uv: int = 128, filled: bool = False) -> None:
    """`letterbox_nv12` of the planes y (h, w) and uv (h/2, w/2, 2) into the planes of an NV12 picture of the
    model size (out_y: model_height rows, out_uv: model_height / 2 rows, each at least model_width bytes),
    which may be views of a larger buffer: the mock's second stage writes every crop of a batch into one
    buffer this way. `filled`: the outputs already hold the pad colour."""
    if not filled:
        out_y[:geometry.model_height] = pad_y
        out_uv[:geometry.model_height // 2] = pad_uv
    rw, rh = geometry.resized_width, geometry.resized_height
    px, py = geometry.pad_x, geometry.pad_y
    out_y[py:py + rh, px:px + rw] = cv2.resize(y, (rw, rh), interpolation=cv2.INTER_LINEAR)
    out_uv[py // 2:(py + rh) // 2, px // 2 * 2:(px + rw) // 2 * 2] = cv2.resize(
        uv, (rw // 2, rh // 2), interpolation=cv2.INTER_LINEAR).reshape(rh // 2, -1)


def crop_planes(buffer: np.ndarray, rect) -> tuple[np.ndarray, np.ndarray]:
    """VPC crop: views of the Y (h, w) and UV (h/2, w/2, 2) planes of the rectangle (x1, y1, x2, y2; x2 y2
    exclusive) of an aligned buffer. DVPP rounds a YUV crop's left/top down to even and its inclusive
    right/bottom down to odd (Ascend/VisionSDK f156edc, DvppWrapper.cpp CropRoiAlign); here an odd corner is
    refused instead, stricter than the SDK: every crop is aligned beforehand (models/crops.py), so one is our
    bug."""
    x1, y1, x2, y2 = (int(v) for v in rect)
    if x1 % 2 or y1 % 2 or x2 % 2 or y2 % 2 or x2 <= x1 or y2 <= y1:
        raise ValueError(f"crop {rect}: corners must be even and the rectangle not empty")
    aligned_h = buffer.shape[0] * 2 // 3
    y = buffer[y1:y2, x1:x2]
    uv = buffer[aligned_h + y1 // 2:aligned_h + y2 // 2, x1:x2].reshape((y2 - y1) // 2, (x2 - x1) // 2, 2)
    return y, uv


def rgb_to_nv12(rgb: np.ndarray) -> np.ndarray:
    """RGB (h, w, 3) uint8 -> aligned NV12 via OpenCV's BT.601 limited-range conversion (what an H.264
    encoder fed from RGB typically produces). For tests and the offline reference path."""
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = i420[:height]
    u = i420[height:height + height // 4].reshape(height // 2, width // 2)
    v = i420[height + height // 4:].reshape(height // 2, width // 2)
    return pack_nv12(y, np.stack([u, v], axis=-1))
