"""Frames worth labelling, kept on the box within a disk quota (`samples` in the daemon's config).

Three kinds, each a full-resolution JPEG without drawings and a JSON sidecar beside it:
- `event`: each event's best frame (rewritten while the event's best frame improves). Whether it was a false
  alarm is a person's decision in the review index, read when the samples are exported.
- `uncertain`: a frame whose best detection score lies in the configured band, at most one per camera per
  `uncertain_interval_s`: what the model was unsure of.
- `random`: a frame per camera at random, about every `random_interval_s` (exponential gaps, so no rhythm of
  the scene is sampled in step), detections or not: the misses no score can flag.

The sidecar holds the camera, frame, time, size, the reason (and event id), every prediction of that frame (both
stages' classes; boxes in camera pixels) and the versions of the models that made them, so a label set built
from the samples says what it corrects. Layout: `<directory>/<camera>/<day>/<name>.jpg|.json`; the quota
(megabytes, age, free space) deletes the oldest first, picture and sidecar together, counted. Deciding costs
a comparison per frame; a picture is converted and encoded only when it is kept.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import pathlib
import random
import re
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from core.logcount import worth_saying
from pipeline.config import SamplesConfig
from pipeline.outputs.quota import delete_oldest, free_megabytes
from pipeline.outputs.snapshots import Frame, encode_jpeg, nv12_to_bgr

logger = logging.getLogger(__name__)

REASONS = ("event", "uncertain", "random")
RETENTION_EVERY_S = 60.0
AWAIT_S = 10.0  # a picture asked for (Ascend) and not come within this is given up (the device stops at 5 s)
SIDECAR = ".json"
OWN_NAME = re.compile(r"(event|uncertain|random)-[0-9A-Za-z._-]+\.jpg")


def model_version(directory: str | pathlib.Path) -> dict:
    """What identifies an exported model: its directory and its file's SHA-256 (the export's model.sha256, or
    computed when the export has none)."""
    directory = pathlib.Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    model_file = directory / manifest.get("model_file", "model.onnx")
    recorded = directory / (model_file.stem + ".sha256")
    if recorded.is_file():
        digest = recorded.read_text(encoding="utf-8").split()[0]
    else:
        digest = hashlib.sha256(model_file.read_bytes()).hexdigest() if model_file.is_file() else None
    return {"path": str(directory), "model_file": model_file.name, "sha256": digest,
            "classes": list(manifest.get("class_names", []))}


def predictions(frame: Frame) -> List[dict]:
    return [{"class": label, "score": round(float(score), 5), "box": [round(float(v), 2) for v in box]}
            for box, label, score in zip(frame.boxes, frame.labels, frame.scores)]


class SampleKeeper:
    def __init__(self, config: SamplesConfig, default_directory: str | pathlib.Path, models: Dict[str, dict],
                 cameras: List[str], seed: Optional[int] = None,
                 request_picture: Callable[[str], None] = lambda camera_id: None):
        self.config = config
        self.directory = pathlib.Path(config.directory or default_directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.models = models
        self.rng = random.Random(seed)
        self.kept = {reason: 0 for reason in REASONS}
        self.deleted = 0
        self.skipped = 0  # frames due but not kept: the disk short of space, or a write refused
        self._next_uncertain = {camera: 0.0 for camera in cameras}
        self._next_random = {camera: self._random_gap() for camera in cameras}
        self._event_frames: Dict[str, int] = {}  # event id -> frame id of its kept picture
        # A device that hands pictures on only when asked (BaseDevice.request_picture): per camera, what its
        # next picture is kept for (reason, event id), asked for when a frame without one was due.
        self.request_picture = request_picture
        self.awaiting: Dict[str, Tuple[str, Optional[str], float]] = {}  # camera -> (reason, event id, since)
        self._next_retention = 0.0

    def _random_gap(self) -> float:
        if self.config.random_interval_s <= 0:
            return float("inf")
        return time.monotonic() + self.rng.expovariate(1.0 / self.config.random_interval_s)

    # --- what is kept -------------------------------------------------------------------------------------------
    def consider(self, frame: Frame) -> Optional[str]:
        """Every frame with a picture passes here; the reason it was kept, or None (most frames)."""
        awaited = self.awaiting.pop(frame.camera_id, None)
        if awaited is not None:  # the picture asked for when the frame before it was due
            reason, event_id, _ = awaited
            if self._keep(frame, reason, event_id) and event_id is not None:
                self._event_frames[event_id] = frame.frame_id
            return reason
        reason = self._due(frame.camera_id, frame.scores)
        if reason is None:
            return None
        return reason if self._keep(frame, reason) else None

    def consider_without_picture(self, camera_id: str, scores: np.ndarray) -> Optional[str]:
        """A frame that came without its picture (the Ascend device hands one on only when asked): when it was
        due, the camera's next frame is asked for with its picture and kept in its place (the next frame of the
        same scene, one frame interval later). Returns the reason asked for, or None."""
        if self._still_awaiting(camera_id):
            return None
        reason = self._due(camera_id, scores)
        if reason is not None:
            self.awaiting[camera_id] = (reason, None, time.monotonic())
            self.request_picture(camera_id)
        return reason

    def _still_awaiting(self, camera_id: str) -> bool:
        """A picture asked for and not come within AWAIT_S (the device gave up asking) is given up, counted."""
        awaited = self.awaiting.get(camera_id)
        if awaited is not None and time.monotonic() - awaited[2] > AWAIT_S:
            del self.awaiting[camera_id]
            self._skip(f"camera {camera_id}: the picture asked for did not come within {AWAIT_S:.0f} s")
        return camera_id in self.awaiting

    def _due(self, camera: str, scores: np.ndarray) -> Optional[str]:
        """Whether a frame of `camera` with these scores is to be kept, and why (its interval restarts)."""
        now = time.monotonic()
        band = self.config.uncertain
        if band is not None and len(scores) and now >= self._next_uncertain.get(camera, 0.0):
            best = float(np.max(scores))
            if band[0] <= best < band[1]:
                self._next_uncertain[camera] = now + self.config.uncertain_interval_s
                return "uncertain"
        if now >= self._next_random.get(camera, float("inf")):
            self._next_random[camera] = self._random_gap()
            return "random"
        return None

    def keep_event(self, event: dict, frame: Optional[Frame]) -> None:
        """An event message with its best frame: that frame kept (again only when the best frame changed). An
        event whose frames come without pictures gets its camera's next picture, asked for once."""
        event_id = event["event_id"]
        if frame is None and event["type"] == "start" and not self._still_awaiting(event["camera"]):
            self.awaiting[event["camera"]] = ("event", event_id, time.monotonic())
            self.request_picture(event["camera"])
            return
        if event["type"] == "end":
            kept = self._event_frames.pop(event_id, None)
            if frame is None or kept == frame.frame_id:
                return
        elif frame is None or self._event_frames.get(event_id) == frame.frame_id:
            return
        if self._keep(frame, "event", event_id):
            self._event_frames[event_id] = frame.frame_id

    def _keep(self, frame: Frame, reason: str, event_id: Optional[str] = None) -> bool:
        if free_megabytes(self.directory) < self.config.min_free_megabytes:
            self._skip(f"less than {self.config.min_free_megabytes:.0f} MB free on {self.directory}")
            return False
        when = datetime.datetime.fromtimestamp(frame.wall_time, datetime.timezone.utc)
        name = (f"event-{event_id}" if event_id else
                f"{reason}-{when.strftime('%H%M%S')}-{frame.frame_id}")
        folder = self.directory / frame.camera_id / when.strftime("%Y-%m-%d")
        sidecar = {"camera": frame.camera_id, "frame": frame.frame_id,
                   "time": when.isoformat(timespec="milliseconds"), "width": frame.width, "height": frame.height,
                   "reason": reason, "event_id": event_id, "predictions": predictions(frame), "models": self.models}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            picture = folder / f"{name}.jpg"
            data = encode_jpeg(nv12_to_bgr(frame.nv12, frame.width, frame.height), self.config.jpeg_quality)
            for path, content in ((picture, data), (picture.with_suffix(SIDECAR), json.dumps(sidecar).encode())):
                temporary = path.with_suffix(".tmp")
                temporary.write_bytes(content)
                os.replace(temporary, path)  # an exporter never reads half a file
        except (OSError, ValueError) as exc:
            self._skip(f"{folder}: cannot write: {getattr(exc, 'strerror', None) or exc}")
            return False
        self.kept[reason] += 1
        self.enforce_retention()
        return True

    def _skip(self, why: str) -> None:
        self.skipped += 1
        if worth_saying(self.skipped):
            logger.warning("samples: a frame not kept (%s); %d so far", why, self.skipped)

    # --- the quota ----------------------------------------------------------------------------------------------
    def own_groups(self):
        """(picture, sidecar) of every sample this daemon wrote: `<camera>/<day>/<reason>-....jpg`."""
        for picture in self.directory.glob("*/*/*.jpg"):
            if OWN_NAME.fullmatch(picture.name):
                yield [picture, picture.with_suffix(SIDECAR)] if picture.with_suffix(SIDECAR).exists() else [picture]

    def enforce_retention(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + RETENTION_EVERY_S
        deleted = delete_oldest(self.own_groups(), max_count=None, max_megabytes=self.config.max_megabytes,
                                oldest_allowed=time.time() - self.config.max_age_days * 86400,
                                free_mb=free_megabytes(self.directory),
                                min_free_megabytes=self.config.min_free_megabytes)
        if deleted:
            self.deleted += deleted
            logger.info("samples: %d oldest deleted (quota %.0f MB, %.0f days; %d so far)", deleted,
                        self.config.max_megabytes, self.config.max_age_days, self.deleted)
