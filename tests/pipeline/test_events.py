import numpy as np
import pytest

from pipeline.events.rules import AlarmRule, EventTracker
from pipeline.events.zones import Zone, assign_zones, points_in_polygon
from pipeline.types import Detections

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def test_points_in_polygon():
    square = np.array([[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]])
    points = np.array([[0.5, 0.5], [0.1, 0.5], [0.8, 0.5], [0.9, 0.9]])
    assert points_in_polygon(points, square).tolist() == [True, False, True, False]


def test_zone_filters_by_position_class_score_and_area():
    detections = Detections(np.array([[100, 100, 200, 300], [700, 100, 790, 150], [120, 100, 130, 290]], np.float32),
                            np.array([0.9, 0.9, 0.2], np.float32), np.array([0, 1, 0]))
    left = Zone("left-tower", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), frozenset({"insulator"}), 0.3, 0.01)
    assert assign_zones(detections, 800, 400, [left], ("insulator", "defect")) == [(0, "left-tower")]
    assert assign_zones(detections, 800, 400, [], ("insulator", "defect")) == [(0, "frame"), (1, "frame"),
                                                                                (2, "frame")]


def observe_object(tracker, t, frame, score=0.9, box=(100, 100, 200, 300)):
    return tracker.observe(t, frame, [("frame", "defect", np.array(box, np.float32), score)])


def test_an_object_standing_for_a_minute_is_one_event_with_updates():
    tracker = EventTracker("cam", AlarmRule(min_hits=3, update_interval_s=10, lost_after_s=5, cooldown_s=60))
    events = []
    for frame in range(600):  # 60 s at 10 fps, the box jittering a little
        jitter = (frame % 3) - 1
        events += observe_object(tracker, 1000.0 + frame / 10, frame, 0.8 + 0.1 * (frame % 2),
                                 (100 + jitter, 100, 200 + jitter, 300))
    events += tracker.observe(1070.0, 700, [])  # gone for 10 s: ended
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == 1
    assert 4 <= kinds.count("update") <= 6
    assert len({e["event_id"] for e in events}) == 1
    assert events[0]["frame"] == 1 and events[-1]["score"] == 0.9  # the best frame so far (score 0.9 first at 1)


def test_cooldown_holds_and_then_releases():
    tracker = EventTracker("cam", AlarmRule(min_hits=2, lost_after_s=2, cooldown_s=30))
    first = observe_object(tracker, 0, 0) + observe_object(tracker, 1, 1) + tracker.observe(4, 2, [])
    assert [e["type"] for e in first] == ["start", "end"]
    again = observe_object(tracker, 10, 3) + observe_object(tracker, 11, 4) + observe_object(tracker, 12, 5)
    assert again == []  # same camera, zone and class inside the cooldown
    later = observe_object(tracker, 40, 6) + observe_object(tracker, 41, 7)
    assert [e["type"] for e in later] == ["start"] and later[0]["event_id"] != first[0]["event_id"]


def test_flicker_below_the_median_score_does_not_start_an_event():
    tracker = EventTracker("cam", AlarmRule(min_hits=3, window=5, median_score=0.5))
    events = []
    for frame, score in enumerate([0.9, 0.3, 0.35, 0.4, 0.3, 0.95]):
        events += observe_object(tracker, frame, frame, score)
    assert events == []
    for frame, score in enumerate([0.8, 0.85, 0.9], start=6):
        events += observe_object(tracker, frame, frame, score)
    assert [e["type"] for e in events] == ["start"]
