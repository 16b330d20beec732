"""Zones and filters per camera: which detections count, and in which zone.

A zone is a polygon in relative coordinates (0..1 of the frame width and height), so it survives a change of
camera resolution; a detection is in a zone when the centre of its box's bottom edge (where an object stands)
lies inside. A zone may restrict classes, a minimum score and a minimum box area (fraction of the frame).
Without zones the whole frame is one zone named `frame`.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from pipeline.types import Detections


@dataclasses.dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]  # relative x, y
    classes: frozenset[str] | None = None
    min_score: float = 0.0
    min_area: float = 0.0  # fraction of the frame area


WHOLE_FRAME = Zone("frame", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


@functools.lru_cache(maxsize=256)
def _edges(polygon: tuple) -> tuple:
    """A polygon's edges as (x1, y1, x2, y2) row vectors, computed once per zone (zones never change)."""
    array = np.asarray(polygon, np.float64)
    return (array[:, 0][None, :], array[:, 1][None, :], np.roll(array[:, 0], -1)[None, :],
            np.roll(array[:, 1], -1)[None, :])


def points_in_polygon(points: np.ndarray, polygon) -> np.ndarray:
    """Even-odd rule, vectorised over points (N, 2) for one polygon (M, 2); edges count as inside."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1, x2, y2 = _edges(tuple(map(tuple, np.asarray(polygon, np.float64).tolist())))
    crosses = ((y1 > y) != (y2 > y)) & (x < (x2 - x1) * (y - y1) / np.where(y2 == y1, 1e-12, y2 - y1) + x1)
    inside = (crosses.sum(axis=1) % 2) == 1
    on_edge = (np.abs((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)) < 1e-9) & \
        (np.minimum(x1, x2) - 1e-9 <= x) & (x <= np.maximum(x1, x2) + 1e-9) & \
        (np.minimum(y1, y2) - 1e-9 <= y) & (y <= np.maximum(y1, y2) + 1e-9)
    return inside | on_edge.any(axis=1)


def assign_zones(detections: Detections, width: int, height: int, zones: list[Zone],
                 class_names: tuple[str, ...]) -> list[tuple[int, str]]:
    """(detection index, zone name) for every detection that passes a zone's filters; a detection inside two
    zones appears twice."""
    if not len(detections):
        return []
    boxes = detections.boxes_xyxy_camera
    anchor = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / width, boxes[:, 3] / height], axis=1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(width * height)
    names = [class_names[int(c)] for c in detections.class_ids]
    result = []
    for zone in zones or [WHOLE_FRAME]:
        if zone.polygon == WHOLE_FRAME.polygon:  # boxes are clipped to the frame: every anchor is inside
            inside = np.ones(len(anchor), dtype=bool)
        else:
            inside = points_in_polygon(anchor, zone.polygon)
        for index in np.nonzero(inside)[0]:
            if zone.classes is not None and names[index] not in zone.classes:
                continue
            if detections.scores[index] < zone.min_score or area[index] < zone.min_area:
                continue
            result.append((int(index), zone.name))
    return result
