"""mxpi_parallel2serial + mxpi_imageresize + mxpi_tensorinfer on the CPU.

The batcher takes frames from every camera's queue in turn (so one busy camera cannot starve the others),
waits at most `waitingTime` after the first frame of a batch for the batch to fill, chooses a dynamic-batch
gear with `dynamicStrategy`, and hands the batch to a pool of `in_flight` workers. Each worker letterboxes the
NV12 frames (VPC), applies the AIPP emulation, pads the batch to its gear and runs its own runtime session, so
several batches are in flight at once. A collector hands results out in submission order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import os
import queue
import threading
import time

import numpy as np

from models.aipp import AippConfig
from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from pipeline.devices.nv12 import dvpp_background, letterbox_nv12
from pipeline.devices.mock.queues import FrameQueue
from pipeline.types import FrameResult

logger = logging.getLogger(__name__)

STRATEGIES = ("Nearest", "Upper", "Lower")


def choose_gear(available: int, gears: tuple[int, ...], strategy: str) -> int:
    """The gear a batch of `available` frames runs with (gears: the model's, up to max_batch)."""
    if available in gears:
        return available
    upper = [g for g in gears if g >= available]
    lower = [g for g in gears if g <= available]
    if strategy == "Upper" or not lower:
        return upper[0] if upper else gears[-1]
    if strategy == "Lower" or not upper:
        return lower[-1]
    # Nearest: the closer gear; a tie goes up (no frame waits for the next batch).
    return upper[0] if upper[0] - available <= available - lower[-1] else lower[-1]


def prepare_batch(frames: list, gear: int, spec: ModelSpec, aipp: AippConfig, pad_y: int,
                  pad_uv: int) -> tuple[np.ndarray, list]:
    """The network input of a batch of NV12 frames, padded with zeros up to `gear`: each frame letterboxed as VPC
    does (padding bytes `pad_y`, `pad_uv`) and AIPP-converted into its slot; and each frame's geometry."""
    h, w = spec.input_height, spec.input_width
    batch = np.zeros((gear, 3, h, w), dtype=np.float32)
    geometries = []
    for i, frame in enumerate(frames):
        info = frame.info
        geometry = letterbox_geometry(info.width, info.height, w, h, spec.letterbox.placement)
        resized = letterbox_nv12(frame.nv12, info.width, info.height, geometry, pad_y, pad_uv)
        aipp.apply_nv12(resized, h, w, out=batch[i])
        geometries.append(geometry)
    return batch, geometries


@dataclasses.dataclass(frozen=True)
class InferSettings:
    model_file: str
    runtime: str | None
    gears: tuple[int, ...]
    waiting_s: float
    strategy: str
    in_flight: int
    threads: int


class InferenceEngine:
    def __init__(self, spec: ModelSpec, aipp: AippConfig, settings: InferSettings, queues: list[FrameQueue],
                 ready: threading.Condition, sources_done, stats_by_channel: dict, out: "queue.Queue",
                 cascade=None):
        self.spec = spec
        self.cascade = cascade  # a second stage on crops (pipeline/devices/mock/stage2.py), or None
        self.aipp = aipp
        self.settings = settings
        self.queues = queues
        self.ready = ready
        self.sources_done = sources_done  # callable: True once no source will produce again
        self.stats_by_channel = stats_by_channel
        self.out = out
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.batches: list[tuple[int, int]] = []  # (frames, gear) of every batch, for tests and metrics
        self._next_queue = 0
        self.error: Exception | None = None
        threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.in_flight)
        # One runtime session per batch in flight, opened here so a bad model fails at start, not in a worker;
        # a worker borrows one for each batch.
        from models.runtime import open_session

        self._sessions: "queue.Queue" = queue.Queue()
        for _ in range(settings.in_flight):
            self._sessions.put(open_session(settings.model_file, settings.runtime, threads))
        self._pool = concurrent.futures.ThreadPoolExecutor(settings.in_flight, thread_name_prefix="infer")
        # A batch is formed only when a session is free to run it: until then frames stay in the camera
        # queues, where a live camera keeps its newest, instead of ageing in a batch nobody can run yet.
        self._slots = threading.Semaphore(settings.in_flight)
        self._pending: "queue.Queue" = queue.Queue(maxsize=2 * settings.in_flight)
        # The bytes DVPP writes into the padding for the graph's RGBValue (MxpiPluginsUtils.cpp
        # SetImageBackground: full-range BT.601, truncated); the AIPP then turns them into the picture the OM sees.
        pad = spec.letterbox.pad_value
        self._pad_y, self._pad_uv, _ = dvpp_background(pad, pad, pad)  # U == V for a grey
        self._batcher = threading.Thread(target=self._batch_loop, name="batcher", daemon=True)
        self._collector = threading.Thread(target=self._collect_loop, name="collector", daemon=True)

    def start(self) -> None:
        self._batcher.start()
        self._collector.start()

    # --- batching -------------------------------------------------------------------------------------------
    def _available(self) -> int:
        return sum(len(q) for q in self.queues)

    def _take(self, count: int) -> list:
        """Round-robin over the cameras, starting after the camera served first last time."""
        frames = []
        n = len(self.queues)
        while len(frames) < count:
            progressed = False
            for offset in range(n):
                q = self.queues[(self._next_queue + offset) % n]
                item = q.pop()
                if item is not None:
                    frames.append(item)
                    progressed = True
                    if len(frames) == count:
                        break
            self._next_queue = (self._next_queue + 1) % n
            if not progressed:
                break
        return frames

    def _batch_loop(self) -> None:
        gears = self.settings.gears
        max_batch = gears[-1]
        try:
            while True:
                while not self._slots.acquire(timeout=0.05):
                    if self.stop.is_set():
                        return
                with self.ready:
                    while not self._available():
                        if self.stop.is_set() or self.sources_done():
                            self._slots.release()
                            return
                        self.ready.wait(0.05)
                    # waitingTime counts from the arrival of the oldest frame waiting.
                    oldest = min(t for t in (q.peek_time() for q in self.queues) if t is not None)
                    deadline = oldest + self.settings.waiting_s
                    while (self._available() < max_batch and not self.stop.is_set()
                           and not self.sources_done() and time.monotonic() < deadline):
                        self.ready.wait(max(0.0, min(0.05, deadline - time.monotonic())))
                    available = min(self._available(), max_batch)
                    gear = choose_gear(available, gears, self.settings.strategy)
                    frames = self._take(min(available, gear))
                self.batches.append((len(frames), gear))
                future = self._pool.submit(self._infer, frames, gear)
                self._pending.put((future, frames))
        except Exception:  # pragma: no cover - a bug here must not hang the daemon silently
            logger.exception("batcher failed")
        finally:
            self._pending.put(None)

    def _infer(self, frames: list, gear: int) -> tuple:
        try:
            return self._run_batch(frames, gear)
        finally:
            self._slots.release()

    def _run_batch(self, frames: list, gear: int) -> tuple:
        batch, geometries = prepare_batch(frames, gear, self.spec, self.aipp, self._pad_y, self._pad_uv)
        session = self._sessions.get()
        try:
            started = time.perf_counter()
            outputs = session.run(batch)
            infer_ms = (time.perf_counter() - started) * 1000.0
        finally:
            self._sessions.put(session)
        stage1, crops, skipped = ([None] * len(frames), [()] * len(frames), [0] * len(frames))
        if self.cascade is not None:  # the next stage of the same batch, on this worker, as a chained graph runs
            stage1, crops, skipped = self.cascade.run(frames, geometries, outputs)
        return geometries, outputs, infer_ms, stage1, crops, skipped

    def _collect_loop(self) -> None:
        try:
            while True:
                item = self._pending.get()
                if item is None:
                    return
                future, frames = item
                try:
                    geometries, outputs, infer_ms, stage1, crops, skipped = future.result()
                except Exception as exc:
                    # An inference failure is a device failure: report and stop.
                    logger.error("inference failed: %s", exc)
                    self.error = exc
                    self.stop.set()
                    return
                for i, frame in enumerate(frames):
                    result = FrameResult(frame.info, geometries[i], tuple(o[i] for o in outputs),
                                         len(frames), len(outputs[0]), infer_ms, frame.nv12, crops[i], skipped[i],
                                         stage1[i])
                    self.stats_by_channel[frame.info.channel_id].processed += 1
                    self.out.put(result)
        finally:
            self.finished.set()

    def shutdown(self) -> None:
        self.stop.set()
        with self.ready:
            self.ready.notify_all()
        self._batcher.join(timeout=10)
        self._collector.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)


def batch_summary(batches: list[tuple[int, int]]) -> dict:
    counts = collections.Counter(batches)
    return {f"{n}/{g}": c for (n, g), c in sorted(counts.items())}
