"""Annotated JPEG snapshots: one per event (its best frame so far), and the latest frame per camera on request.

Frames arrive as the device's NV12 buffers (DVPP-aligned, valid picture top-left); they are converted to BGR
only when a picture is actually needed (an event, an HTTP request), never per frame. Event snapshots live in
`<directory>/<camera>/<event id>.jpg`, rewritten when the event's best frame improves, and are deleted oldest
first beyond the count, age and size limits or while the disk runs short of free space.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import re
import time

import cv2
import numpy as np

from pipeline.config import NAME_PATTERN, SnapshotConfig
from pipeline.outputs.quota import delete_oldest, free_megabytes

logger = logging.getLogger(__name__)

COLOURS = [(0, 200, 255), (0, 0, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255), (255, 255, 0)]
RETENTION_EVERY_S = 60.0
OWN_NAME = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jpg")  # <event uuid4>.jpg
CAMERA_DIR = re.compile(NAME_PATTERN)  # a camera id (CameraConfig.id)


@dataclasses.dataclass(frozen=True)
class Frame:
    """A decoded frame and what was found in it (boxes in camera pixels)."""

    camera_id: str
    frame_id: int
    wall_time: float
    nv12: np.ndarray
    width: int
    height: int
    boxes: np.ndarray
    labels: tuple[str, ...]
    scores: np.ndarray


def nv12_to_bgr(nv12: np.ndarray, width: int, height: int) -> np.ndarray:
    aligned_h = nv12.shape[0] * 2 // 3
    y = nv12[:height, :width]
    uv = nv12[aligned_h:aligned_h + height // 2, :width]
    return cv2.cvtColor(np.ascontiguousarray(np.vstack([y, uv])), cv2.COLOR_YUV2BGR_NV12)


def annotate(frame: Frame, highlight: np.ndarray | None = None) -> np.ndarray:
    """BGR picture with every box, label and score; `highlight` (the event's box) drawn thicker."""
    image = nv12_to_bgr(frame.nv12, frame.width, frame.height)
    scale = max(1, round(max(frame.width, frame.height) / 800))
    names = sorted(set(frame.labels))
    for box, label, score in zip(frame.boxes, frame.labels, frame.scores):
        colour = COLOURS[names.index(label) % len(COLOURS)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2 * scale)
        cv2.putText(image, f"{label} {score:.2f}", (x1, max(12 * scale, y1 - 4 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * scale, colour, scale, cv2.LINE_AA)
    if highlight is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in highlight)
        cv2.rectangle(image, (x1 - 3 * scale, y1 - 3 * scale), (x2 + 3 * scale, y2 + 3 * scale), (255, 255, 255),
                      scale)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(frame.wall_time)) + f" UTC  {frame.camera_id}"
    cv2.putText(image, stamp, (8 * scale, frame.height - 8 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                (255, 255, 255), scale, cv2.LINE_AA)
    return image


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class SnapshotStore:
    def __init__(self, config: SnapshotConfig, default_directory: str | pathlib.Path):
        self.config = config
        self.directory = pathlib.Path(config.directory or default_directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self.deleted = 0
        self.skipped = 0
        self._next_retention = 0.0

    def path_for(self, camera_id: str, event_id: str) -> pathlib.Path:
        return self.directory / camera_id / f"{event_id}.jpg"

    def write_event(self, event: dict, frame: Frame) -> str | None:
        """The event's snapshot (relative path), or None when the disk is short of space."""
        if self._free_mb() < self.config.min_free_megabytes:
            self.skipped += 1
            logger.warning("snapshot of event %s skipped: less than %.0f MB free on %s", event["event_id"],
                           self.config.min_free_megabytes, self.directory)
            return None
        path = self.path_for(frame.camera_id, event["event_id"])
        path.parent.mkdir(exist_ok=True)
        data = encode_jpeg(annotate(frame, np.asarray(event["box"], np.float32)), self.config.jpeg_quality)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # a reader never sees half a JPEG
        self.written += 1
        self.enforce_retention(force=True)
        return str(path.relative_to(self.directory))

    def own_files(self):
        """The snapshots this daemon wrote: `<camera id>/<event uuid>.jpg`. Retention never touches anything
        else, so a snapshot directory shared with other tools keeps their files."""
        for path in self.directory.glob("*/*.jpg"):
            if OWN_NAME.fullmatch(path.name) and CAMERA_DIR.fullmatch(path.parent.name):
                yield path

    def find(self, event_id: str) -> pathlib.Path | None:
        matches = list(self.directory.glob(f"*/{event_id}.jpg"))
        return matches[0] if matches else None

    def _free_mb(self) -> float:
        return free_megabytes(self.directory)

    def enforce_retention(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + RETENTION_EVERY_S
        deleted = delete_oldest(([path] for path in self.own_files()), max_count=self.config.max_count,
                                max_megabytes=self.config.max_megabytes,
                                oldest_allowed=time.time() - self.config.max_age_days * 86400,
                                free_mb=self._free_mb(), min_free_megabytes=self.config.min_free_megabytes)
        self.deleted += deleted
        if deleted:
            logger.info("snapshots: %d oldest deleted (limits: %d files, %.0f MB, %.0f days)", deleted,
                        self.config.max_count, self.config.max_megabytes, self.config.max_age_days)
