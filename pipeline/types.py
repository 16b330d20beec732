"""Typed results that cross the device boundary and the host side. Pixel spaces are in the field names. And
`RequestRefused`, what the host side raises for a request it will not serve, which the HTTP side answers."""

from __future__ import annotations

import dataclasses

import numpy as np

from models.letterbox import LetterboxGeometry

__all__ = ["FrameInfo", "LetterboxGeometry", "CropOutput", "FrameResult", "Detections", "CameraStats",
           "RequestRefused"]


class RequestRefused(ValueError):
    """A request (an HTTP one) that cannot be served as given; the HTTP side answers `status` with the message,
    which names the key or the item."""

    status = 400


@dataclasses.dataclass(frozen=True)
class FrameInfo:
    """Where a frame came from. `frame_id` counts decoded frames of the camera from 0 (before frame skip), so
    skipped and dropped frames leave gaps; `pts_s` is the stream timestamp in seconds (None if unknown)."""

    camera_id: str
    channel_id: int
    frame_id: int
    pts_s: float | None
    wall_time: float  # time.time() when the frame was decoded (the Ascend device: when its result arrived)
    monotonic_time: float | None  # time.monotonic() at decode, for latency; None where the device cannot tell
    width: int  # valid picture in camera pixels
    height: int
    decode_ms: float | None = None  # decode + colour conversion of this frame, when the device measures it


@dataclasses.dataclass(frozen=True)
class CropOutput:
    """The second model's output for one crop of a frame (docs/cascade.md): where the crop was cut (camera pixels,
    x1 y1 x2 y2, DVPP-aligned), the first-stage object it was cut around, and the model's output tensors."""

    rect_camera: tuple[int, int, int, int]
    parent: int  # index of that object in the frame's FrameResult.stage1
    geometry: LetterboxGeometry  # the crop letterboxed into the second model's input
    tensors: tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """One frame's inference output as the device hands it to the host: the model's output tensors for this
    frame alone (batch dimension removed), in the manifest's output order."""

    info: FrameInfo
    geometry: LetterboxGeometry
    tensors: tuple[np.ndarray, ...]
    batch_size: int | None  # frames in the batch this frame was inferred in (None: the device does not say)
    gear: int | None  # the dynamic-batch gear that ran (None: the device does not say)
    infer_ms: float | None = None  # the batch's inference time, when the device measures it
    nv12: np.ndarray | None = None  # the decoded frame (DVPP-aligned NV12) for snapshots, when the device has it
    crops: tuple[CropOutput, ...] = ()  # a second stage's crops of this frame (none without one)
    crops_skipped: int = 0  # crops of this frame's parents not examined: beyond stage2.max_crops, or lost
    # With a second stage: the first model's detections, decoded by the device to plan the crops with the
    # host's own rule; the host reports them as they are (decoded once). None: the host decodes `tensors`.
    stage1: "Detections | None" = None


@dataclasses.dataclass(frozen=True)
class Detections:
    """Detections of one frame, boxes in camera pixels (x1, y1, x2, y2)."""

    boxes_xyxy_camera: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    # A second stage's detection: the index in this list of the first-stage object it was found in (-1: a
    # first-stage detection). None: no second stage.
    parents: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.scores)
        if self.boxes_xyxy_camera.shape != (n, 4) or self.class_ids.shape != (n,):
            raise ValueError(f"Detections: boxes {self.boxes_xyxy_camera.shape}, scores ({n},), class_ids "
                             f"{self.class_ids.shape} disagree")
        if self.parents is not None and self.parents.shape != (n,):
            raise ValueError(f"Detections: parents {self.parents.shape} and scores ({n},) disagree")

    def __len__(self) -> int:
        return len(self.scores)

    def to_json(self, class_names: tuple[str, ...]) -> list[dict]:
        # Rounded by numpy in one call each, not per value in Python (this runs for every frame).
        boxes = np.round(self.boxes_xyxy_camera.astype(np.float64), 2).tolist()
        scores = np.round(self.scores.astype(np.float64), 5).tolist()
        lines = [{"class": class_names[c], "score": s, "box": b}
                 for b, s, c in zip(boxes, scores, self.class_ids.tolist())]
        if self.parents is not None:
            for line, parent in zip(lines, self.parents.tolist()):
                if parent >= 0:
                    line["parent"] = parent
        return lines


@dataclasses.dataclass
class CameraStats:
    """Counters of one camera, owned by its source; read by summaries and metrics."""

    camera_id: str
    frames_in: int = 0  # decoded
    skipped: int = 0  # by frame skip
    dropped: int = 0  # live overflow: oldest frames dropped
    processed: int = 0  # inferred and handed to the host
    reconnects: int = 0
    errors: int = 0
    state: str = "starting"  # starting, started (stream created), running, reconnecting, finished, failed
    last_error: str = ""
    unmeasured: tuple = ()  # counters this device cannot know (the Ascend device: drops inside the SDK...)

    def value(self, field: str):
        """A counter, or None where the device cannot measure it (shown as null, never as 0)."""
        return None if field in self.unmeasured else getattr(self, field)
