"""Alarm rules: from per-frame detections to events with a lifecycle (start, update, end) and a stable id.

Per camera, detections in a zone are tracked by class and box overlap (IoU). A track becomes an event when it
persists: at least `min_hits` matched frames and, if set, the median of its last `window` scores at or above
`median_score`. An active event sends `update` at most every `update_interval_s` (with its best frame so far)
and `end` once its object has not been seen for `lost_after_s`. After an event ends, no new event starts for
the same camera, zone and class until `cooldown_s` has passed, so one stuck object or a flickering one does not
flood anyone. Times are the frames' wall-clock times, so replaying a recording gives the same events.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import uuid

import numpy as np


@dataclasses.dataclass(frozen=True)
class AlarmRule:
    min_hits: int = 3
    window: int = 5
    median_score: float | None = None
    match_iou: float = 0.3
    lost_after_s: float = 5.0
    update_interval_s: float = 10.0
    cooldown_s: float = 60.0


@dataclasses.dataclass
class Track:
    zone: str
    class_name: str
    box: np.ndarray
    first_seen: float
    last_seen: float
    scores: list = dataclasses.field(default_factory=list)
    hits: int = 0
    event_id: str | None = None
    started: float | None = None
    last_update: float | None = None
    best: dict = dataclasses.field(default_factory=dict)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), x1 y1 x2 y2."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds")


class EventTracker:
    """One per camera. `observe(...)` returns the events this frame produced."""

    def __init__(self, camera_id: str, rule: AlarmRule):
        self.camera_id = camera_id
        self.rule = rule
        self.tracks: list[Track] = []
        self.cooldown_until: dict[tuple[str, str], float] = {}

    def _event(self, kind: str, track: Track, now: float) -> tuple[dict, object]:
        # `id` is unique per message (receivers de-duplicate on it); `event_id` is shared by start/update/end.
        return ({"id": str(uuid.uuid4()), "event_id": track.event_id, "type": kind, "camera": self.camera_id,
                 "zone": track.zone, "class": track.class_name, "started": _iso(track.started), "time": _iso(now),
                 "hits": track.hits, "score": round(track.best["score"], 5),
                 "box": [round(float(v), 2) for v in track.best["box"]], "frame": track.best["frame"]},
                track.best.get("ref"))

    def observe(self, now: float, frame_id: int, observations: list[tuple[str, str, np.ndarray, float]]) -> list[dict]:
        """observations: (zone, class name, box in camera pixels, score) of this frame."""
        return [event for event, _ in self.observe_frames(now, frame_id, observations)]

    def observe_frames(self, now: float, frame_id: int, observations: list[tuple[str, str, np.ndarray, float]],
                       frame_ref: object = None) -> list[tuple[dict, object]]:
        """As observe; each event comes with the `frame_ref` of its best frame (the daemon's snapshot source)."""
        events = []
        if not observations and not self.tracks:
            return events  # an empty scene: nothing to match, nothing to end
        observations = sorted(observations, key=lambda o: -o[3])
        # IoU of every observation with every track at once (the pairs a per-pair loop would visit); a track
        # is matched once, best score first, to the track of its zone and class it overlaps most.
        overlaps = iou_matrix(np.asarray([o[2] for o in observations], np.float64).reshape(-1, 4),
                              np.asarray([t.box for t in self.tracks], np.float64).reshape(-1, 4))
        unmatched = set(range(len(self.tracks)))
        for row, (zone, class_name, box, score) in enumerate(observations):
            best, best_iou = None, self.rule.match_iou
            for index in unmatched:
                track = self.tracks[index]
                if track.zone == zone and track.class_name == class_name and overlaps[row, index] >= best_iou:
                    best, best_iou = index, overlaps[row, index]
            if best is None:
                self.tracks.append(Track(zone, class_name, box, now, now))
                best = len(self.tracks) - 1
            else:
                unmatched.discard(best)
            track = self.tracks[best]
            track.box, track.last_seen = box, now
            track.hits += 1
            track.scores = (track.scores + [float(score)])[-self.rule.window:]
            if not track.best or score > track.best["score"]:
                track.best = {"score": float(score), "box": box.copy(), "frame": frame_id, "ref": frame_ref}
            events += self._advance(track, now)
        # Objects not seen: end their events once lost long enough, forget tentative tracks.
        kept = []
        for track in self.tracks:
            if now - track.last_seen >= self.rule.lost_after_s:
                if track.event_id is not None:
                    events.append(self._event("end", track, now))
                    self.cooldown_until[(track.zone, track.class_name)] = now + self.rule.cooldown_s
                continue
            kept.append(track)
        self.tracks = kept
        return events

    def _advance(self, track: Track, now: float) -> list[tuple[dict, object]]:
        if track.event_id is None:
            persistent = track.hits >= self.rule.min_hits and (
                self.rule.median_score is None or statistics.median(track.scores) >= self.rule.median_score)
            if not persistent:  # most tentative tracks stop here, before the scan for an active event below
                return []
            cooling = now < self.cooldown_until.get((track.zone, track.class_name), 0.0)
            active = any(t.event_id and t.zone == track.zone and t.class_name == track.class_name
                         for t in self.tracks if t is not track)
            if not cooling and not active:
                track.event_id, track.started, track.last_update = str(uuid.uuid4()), now, now
                return [self._event("start", track, now)]
            return []
        if now - track.last_update >= self.rule.update_interval_s:
            track.last_update = now
            return [self._event("update", track, now)]
        return []
