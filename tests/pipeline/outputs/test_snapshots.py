"""Event snapshots: the annotated picture matches the frame, retention by count, age and size."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from pipeline.config import SnapshotConfig
from pipeline.devices.nv12 import pack_nv12
from pipeline.outputs.snapshots import Frame, SnapshotStore

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def grey_frame(camera="cam", frame_id=0, width=200, height=120) -> Frame:
    y = np.full((height, width), 120, np.uint8)
    uv = np.full((height // 2, width // 2, 2), 128, np.uint8)
    return Frame(camera, frame_id, time.time(), pack_nv12(y, uv), width, height,
                 np.array([[20, 30, 80, 90]], np.float32), ("insulator",), np.array([0.9], np.float32))


def event(i: int) -> dict:
    return {"event_id": f"00000000-0000-0000-0000-{i:012d}", "box": [20, 30, 80, 90]}


def test_snapshot_is_the_frame_with_its_boxes(tmp_path):
    store = SnapshotStore(SnapshotConfig(min_free_megabytes=0), tmp_path)
    relative = store.write_event(event(1), grey_frame())
    image = cv2.imread(str(tmp_path / relative))
    assert image.shape == (120, 200, 3)
    # Inside the box: the grey picture (limited-range Y 120 -> ~121 RGB); on its edge: the box colour.
    assert abs(int(image[60, 50].mean()) - 121) <= 4
    assert np.abs(image[30, 50].astype(int) - image[60, 50].astype(int)).max() > 60
    assert store.find(event(1)["event_id"]) == tmp_path / relative


def test_retention_by_count_age_and_size(tmp_path):
    store = SnapshotStore(SnapshotConfig(max_count=3, min_free_megabytes=0), tmp_path)
    for i in range(5):
        store.write_event(event(i), grey_frame(frame_id=i))
        os.utime(store.path_for("cam", event(i)["event_id"]), (time.time() - 100 + i, time.time() - 100 + i))
    store.enforce_retention(force=True)
    assert sorted(p.stem[-1] for p in tmp_path.glob("*/*.jpg")) == ["2", "3", "4"]  # the newest three

    store.config = SnapshotConfig(max_count=3, max_age_days=50 / 86400, min_free_megabytes=0)
    store.enforce_retention(force=True)
    assert list(tmp_path.glob("*/*.jpg")) == []  # all older than 50 s

    size = (tmp_path / store.write_event(event(9), grey_frame())).stat().st_size
    store.config = SnapshotConfig(max_megabytes=2.5 * size / 2**20, min_free_megabytes=0)  # room for two
    for i in range(5):
        store.write_event(event(i), grey_frame(frame_id=i))
    assert sorted(p.stem[-1] for p in tmp_path.glob("*/*.jpg")) == ["3", "4"]


def test_short_disk_skips_new_snapshots(tmp_path, caplog):
    store = SnapshotStore(SnapshotConfig(min_free_megabytes=1e12), tmp_path)  # never that much free
    assert store.write_event(event(1), grey_frame()) is None
    assert store.skipped == 1 and "less than" in caplog.text


def test_retention_deletes_only_what_the_daemon_wrote(tmp_path):
    # A snapshot directory shared with other tools: their pictures are never the daemon's to delete.
    foreign = [tmp_path / "cam" / "inspection-photo.jpg", tmp_path / "manual" / "IMG_0001.jpg",
               tmp_path / "cam" / "00000000-0000-0000-0000-00000000000g.jpg"]
    for path in foreign:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"not ours")
        os.utime(path, (0, 0))  # older than any age limit
    store = SnapshotStore(SnapshotConfig(max_count=1, max_age_days=1, min_free_megabytes=0), tmp_path)
    for i in range(3):
        store.write_event(event(i), grey_frame(frame_id=i))
    store.enforce_retention(force=True)
    assert all(path.read_bytes() == b"not ours" for path in foreign)
    assert [p.name for p in store.own_files()] == [f"{event(2)['event_id']}.jpg"]
