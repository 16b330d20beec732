"""Batching across cameras with waitingTime and dynamicStrategy, on the real inference engine."""

import queue
import threading
import time

import numpy as np
import pytest

from models.aipp import AippConfig
from models.spec import ModelSpec
from pipeline.devices.mock.infer import InferenceEngine, InferSettings, choose_gear
from pipeline.devices.nv12 import rgb_to_nv12
from pipeline.devices.mock.queues import FrameQueue
from pipeline.devices.mock.source import DecodedFrame
from pipeline.types import CameraStats, FrameInfo

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


@pytest.mark.parametrize("available, strategy, gear", [
    (4, "Upper", 4), (3, "Upper", 4), (3, "Lower", 2), (3, "Nearest", 4), (5, "Nearest", 4), (7, "Nearest", 8),
    (1, "Lower", 1), (6, "Lower", 4), (6, "Upper", 8),
])
def test_choose_gear(available, strategy, gear):
    assert choose_gear(available, (1, 2, 4, 8), strategy) == gear


class Harness:
    def __init__(self, model_dir, cameras=3, waiting_s=0.2, strategy="Upper", max_batch=4):
        spec = ModelSpec.load(model_dir)
        self.ready = threading.Condition()
        self.queues = [FrameQueue(16, False, self.ready) for _ in range(cameras)]
        self.stats = {i: CameraStats(f"cam{i}") for i in range(cameras)}
        self.out = queue.Queue()
        self.done = threading.Event()
        gears = tuple(g for g in spec.batch_gears if g <= max_batch)
        self.engine = InferenceEngine(spec, AippConfig.from_spec(spec),
                                      InferSettings(str(model_dir / spec.model_file), None, gears, waiting_s,
                                                    strategy, 1, 1),
                                      self.queues, self.ready, self.done.is_set, self.stats, self.out)
        self.image = rgb_to_nv12(np.full((240, 320, 3), 90, np.uint8))
        self.frame_ids = {i: 0 for i in range(cameras)}

    def push(self, camera):
        frame_id = self.frame_ids[camera]
        self.frame_ids[camera] += 1
        info = FrameInfo(f"cam{camera}", camera, frame_id, None, time.time(), time.monotonic(), 320, 240)
        self.queues[camera].put(DecodedFrame(info, self.image), threading.Event())

    def results(self, count, timeout=60):
        return [self.out.get(timeout=timeout) for _ in range(count)]


def test_batches_fill_across_cameras_and_a_partial_batch_leaves_after_the_wait(tiny_model_dir):
    h = Harness(tiny_model_dir, waiting_s=0.3, strategy="Upper")
    for _ in range(2):
        for camera in range(3):
            h.push(camera)
    h.push(0)  # 7 frames: one full batch of 4, then 3 that can only leave when the wait runs out
    pushed = time.monotonic()
    h.engine.start()
    results = h.results(7)
    left = time.monotonic()
    h.done.set()
    assert h.engine.batches == [(4, 4), (3, 4)]  # Upper: 3 frames run in gear 4
    first = results[:4]
    assert {r.info.camera_id for r in first} == {"cam0", "cam1", "cam2"}  # round robin, not one camera
    assert all(r.batch_size == 4 and r.gear == 4 for r in first)
    assert [r.batch_size for r in results[4:]] == [3, 3, 3]
    assert left - pushed >= 0.3  # the partial batch waited for waitingTime before leaving
    # Per camera, frames come out in order.
    for camera in range(3):
        ids = [r.info.frame_id for r in results if r.info.camera_id == f"cam{camera}"]
        assert ids == sorted(ids)
    h.engine.shutdown()


def test_lower_strategy_keeps_the_rest_for_the_next_batch(tiny_model_dir):
    h = Harness(tiny_model_dir, waiting_s=0.05, strategy="Lower")
    for camera in range(3):
        h.push(camera)
    h.engine.start()
    h.results(3)
    h.done.set()
    assert h.engine.batches == [(2, 2), (1, 1)]
    h.engine.shutdown()


def test_batch_padding_does_not_change_a_frame_result(tiny_model_dir):
    """A frame alone (gear 1) and the same frame in a padded batch (3 of gear 4) give the same tensors."""
    alone = Harness(tiny_model_dir, waiting_s=0.0)
    alone.push(0)
    alone.engine.start()
    single = alone.results(1)[0]
    alone.done.set()
    alone.engine.shutdown()
    padded = Harness(tiny_model_dir, waiting_s=0.05)
    for camera in range(3):
        padded.push(camera)
    padded.engine.start()
    batch = padded.results(3)
    padded.done.set()
    padded.engine.shutdown()
    assert single.gear == 1 and batch[0].gear == 4
    for a, b in zip(single.tensors, batch[0].tensors):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
