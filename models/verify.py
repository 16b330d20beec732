"""Cross-check of the MindSpore network against OpenCV's Darknet importer, an independent implementation.

Both run the same cfg and `.weights` on the same images (RGB /255, resized to the network input). OpenCV's
YOLO layer rows are `(cx, cy, w, h, objectness, objectness * class...)` normalised to the input size, in
(row, column, anchor) order per head; `YoloDecode` uses the same order, so rows compare one to one.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile

import numpy as np

from models.darknet_cfg import DarknetCfg, render_cfg

# float32 through ~110 convolutions in two implementations with different summation orders: relative
# differences of ~1e-7 per layer compound; measured maxima are ~5e-4 px and ~1e-6 in scores (yolov4, 320 and
# 416), so these bounds leave two orders of margin and still catch any real error (a wrong pad or anchor).
DEFAULT_TOLERANCE = {"box_px": 0.01, "score": 1e-4}


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    cfg: str
    weights: str
    size: tuple[int, int]
    batch: int
    classes: int
    candidates: int
    max_box_diff_px: float
    max_objectness_diff: float
    max_score_diff: float
    tolerance: dict
    ok: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def opencv_outputs(cfg: DarknetCfg, weights: str | pathlib.Path, blob: np.ndarray) -> np.ndarray:
    """OpenCV's decoded rows for an NCHW float blob, as (N, K, 5 + C) in YoloDecode's candidate order."""
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = pathlib.Path(tmp) / f"{cfg.name}.cfg"
        # thresh=0: OpenCV otherwise zeroes class scores below 0.2, which would hide differences.
        cfg_path.write_text(render_cfg(cfg).replace("[yolo]", "[yolo]\nthresh=0"), encoding="utf-8")
        net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(blob)
    outs = net.forward(net.getUnconnectedOutLayersNames())
    batch = blob.shape[0]
    # OpenCV stacks the batch inside each output: (N * rows, 5 + C).
    per_head = [out.reshape(batch, -1, out.shape[-1]) for out in outs]
    # OpenCV orders unconnected outputs by layer id, which is the cfg order of the [yolo] layers.
    return np.concatenate(per_head, axis=1)


def verify(cfg: DarknetCfg, weights: str | pathlib.Path, images: list[np.ndarray],
           tolerance: dict | None = None) -> VerifyResult:
    """Run both implementations on `images` (BGR uint8, any size) and compare decoded outputs."""
    import cv2

    from models import msenv  # noqa: F401
    import mindspore as ms

    from models.network import DarknetYolo, DecodedYolo
    from models.weights import load_weights

    tolerance = dict(DEFAULT_TOLERANCE, **(tolerance or {}))
    blob = cv2.dnn.blobFromImages(images, 1 / 255.0, (cfg.width, cfg.height), swapRB=True, crop=False)
    network = DecodedYolo(DarknetYolo(cfg), with_objectness=True)
    load_weights(network, weights, strict=True)
    network.set_train(False)
    boxes, scores, objectness = (o.asnumpy() for o in network(ms.Tensor(blob)))
    reference = opencv_outputs(cfg, weights, blob)
    if reference.shape[:2] != boxes.shape[:2]:
        raise AssertionError(f"OpenCV gives {reference.shape[:2]} candidates, MindSpore {boxes.shape[:2]}")
    scale = np.array([cfg.width, cfg.height, cfg.width, cfg.height], dtype=np.float64)
    ref_cxcywh = reference[..., :4] * scale
    ref_xyxy = np.concatenate([ref_cxcywh[..., :2] - ref_cxcywh[..., 2:] / 2,
                               ref_cxcywh[..., :2] + ref_cxcywh[..., 2:] / 2], axis=-1)
    box_diff = float(np.abs(ref_xyxy - boxes).max())
    obj_diff = float(np.abs(reference[..., 4] - objectness[..., 0]).max())
    score_diff = float(np.abs(reference[..., 5:] - scores).max())
    ok = box_diff <= tolerance["box_px"] and max(obj_diff, score_diff) <= tolerance["score"]
    return VerifyResult(cfg.name, str(weights), (cfg.height, cfg.width), len(images), cfg.classes,
                        int(boxes.shape[1]), box_diff, obj_diff, score_diff, tolerance, bool(ok))
