"""The CPU mock device: runs a MindX stream graph with CPU emulations of its plugins.

Supported factories and the props it honours:
- mxpi_rtspsrc (rtspUrl, channelId) / filesrc (location): PyAV over TCP, guard/reconnect (source.py)
- queue (max-size-buffers, leaky): the per-camera FrameQueue after the decoder (leaky 2: drop oldest, counted)
- mxpi_videodecoder (outputImageFormat YUV420SP_NV12): NV12, width aligned to 16, height to 2
- mxpi_skipframe (frameNum): one frame in frameNum + 1
- mxpi_parallel2serial: the batcher's round-robin over cameras
- mxpi_imageresize (resizeHeight, resizeWidth, resizeType Resizer_KeepAspectRatio_Fit): NV12 letterbox
- mxpi_tensorinfer (modelPath, waitingTime, dynamicStrategy): AIPP emulation + the CPU runtime
- mxpi_dataserialize, appsink: results handed to `get_result`
A graph with any other plugin is refused, naming the element and its factory.

The graph comes read and checked (RunPlan, pipeline/runplan.py: the factories above, the model, the config);
the device refuses only the props it does not emulate. A second stage (DeviceSettings.stage2, not a graph
element: docs/cascade.md says why) runs on each first-stage batch's crops, cut from the decoded NV12 frames (stage2.py); its outputs travel with the frame's result.
"""

from __future__ import annotations

import logging
import os
import pathlib
import queue
import threading
import time

from models.aipp import AippConfig
from models.spec import ModelSpec
from pipeline.codecs import DEFAULT_FORMAT
from pipeline.devices.base import BaseDevice, DeviceError, RunPlan
from pipeline.devices.mock.infer import InferenceEngine, InferSettings
from pipeline.devices.mock.queues import FrameQueue
from pipeline.devices.mock.source import CameraSource, SourceSpec
from pipeline.graph import LETTERBOX
from pipeline.types import CameraStats, FrameResult

logger = logging.getLogger(__name__)

RESULT_QUEUE = 64
DESTROY_TIMEOUT_S = 30.0


def cpu_model_file(directory: pathlib.Path, spec: ModelSpec, where: str) -> pathlib.Path:
    """The exported CPU model the manifest names beside the OM the graph names (an export directory's model, or a
    converted directory's `cpu_model_file`): what the mock runs."""
    name = spec.cpu_model_name
    if not name or not spec.outputs.get("decoded"):
        raise DeviceError(f"{where}: the manifest names no decoded CPU model file "
                          "(export without --raw; a converted directory keeps the ONNX as cpu_model_file)")
    model_file = directory / name
    if not model_file.is_file():
        raise DeviceError(f"{where}: {model_file} (from manifest.json) does not exist")
    return model_file


class MockDevice(BaseDevice):
    kind = "mock"

    def __init__(self, runtime: str | None = None):
        self.runtime = runtime
        self.stop_event = threading.Event()
        self.ready = threading.Condition()
        self.sources: list[CameraSource] = []
        self.stats: list[CameraStats] = []
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=RESULT_QUEUE)
        self.engine: InferenceEngine | None = None
        self.spec: ModelSpec | None = None

    def create_streams(self, plan: RunPlan) -> None:
        self.check_plan_kind(plan)
        streams, spec, settings = plan.streams, plan.spec, plan.settings
        if streams.resize is None or streams.infer is None:
            raise DeviceError("the mock device needs exactly one mxpi_imageresize and one mxpi_tensorinfer")
        resize_type = streams.props(streams.resize).get("resizeType", "Resizer_Stretch")  # the SDK's default
        if resize_type != LETTERBOX:
            raise DeviceError(f"element {streams.resize!r}: resizeType {resize_type!r} is not emulated "
                              f"(only {LETTERBOX})")
        props = streams.props(streams.infer)
        model_file = cpu_model_file(pathlib.Path(props["modelPath"]).parent, spec, f"modelPath {props['modelPath']}")
        strategy = props.get("dynamicStrategy", "Nearest")
        gears = tuple(g for g in spec.batch_gears if g <= settings.max_batch)
        self.spec = spec
        for channel, (chain, camera) in enumerate(zip(streams.cameras, settings.cameras)):
            fmt = chain.decoder_props.get("outputImageFormat", "YUV420SP_NV12")
            if fmt != "YUV420SP_NV12":
                raise DeviceError(f"decoder of {chain.source!r}: outputImageFormat {fmt!r} is not emulated "
                                  "(YUV420SP_NV12)")
            stats = CameraStats(camera.camera_id)
            live = camera.mode == "live"
            # The graph's queue after the decoder: `leaky: 2` drops the oldest frame when full (plugins.md
            # "queue"), as a live camera's queue does here; a file source's queue never drops.
            capacity = int(chain.queue_props.get("max-size-buffers", "200")) if chain.queue else 200
            drop_oldest = chain.queue_props.get("leaky", "0") == "2"
            if live != drop_oldest:
                logger.warning("camera %s: the graph's queue %s %s, while the camera is in %s mode; the graph rules",
                               camera.camera_id, chain.queue, "drops the oldest frames" if drop_oldest else
                               "never drops", camera.mode)
            frame_queue = FrameQueue(max(1, capacity), drop_oldest, self.ready)
            source = CameraSource(
                SourceSpec(camera.camera_id, channel, chain.url, chain.factory == "mxpi_rtspsrc", live,
                           chain.frame_skip, camera.max_frames, camera.loop, camera.rate_fps,
                           camera.no_frame_timeout_s, backoff_max_s=camera.reconnect_max_s,
                           video_format=chain.decoder_props.get("inputVideoFormat", DEFAULT_FORMAT)),
                frame_queue, stats, self.stop_event)
            self.sources.append(source)
            self.stats.append(stats)
        cascade = None
        if settings.stage2 is not None:
            from pipeline.devices.mock.stage2 import CropInference

            model2 = cpu_model_file(pathlib.Path(settings.stage2.model_dir), plan.spec2, "stage2.model")
            cascade = CropInference(spec, plan.spec2, str(model2), settings.stage2, self.runtime, settings.in_flight,
                                    settings.threads or max(1, (os.cpu_count() or 1) // settings.in_flight))
        self.engine = InferenceEngine(
            spec, AippConfig.for_model(spec),
            InferSettings(str(model_file), self.runtime, gears, int(props.get("waitingTime", "5000")) / 1000.0,
                          strategy, settings.in_flight, settings.threads),
            [s.queue for s in self.sources], self.ready, self._sources_done,
            {i: s for i, s in enumerate(self.stats)}, self.results, cascade)
        for source in self.sources:
            source.start()
        self.engine.start()  # after the sources: with none started, it would see them all done
        logger.info("mock device: %d cameras, model %s (%s), gears %s, waitingTime %s ms, %s",
                    len(self.sources), model_file.name, spec.architecture, list(gears),
                    props.get("waitingTime", "5000"), strategy)

    def _sources_done(self) -> bool:
        return all(not s.is_alive() for s in self.sources)

    def get_result(self, timeout_s: float) -> FrameResult | None:
        try:
            return self.results.get(timeout=timeout_s)
        except queue.Empty:
            if self.engine is not None and self.engine.error is not None:
                raise DeviceError(f"inference failed: {self.engine.error}") from self.engine.error
            return None

    def finished(self) -> bool:
        return self.engine is not None and self.engine.finished.is_set() and self.results.empty()

    def stop_sources(self) -> None:
        self.stop_event.set()
        with self.ready:
            self.ready.notify_all()

    def destroy(self) -> None:
        """Stop everything. The daemon has drained results before; whatever is still queued is discarded."""
        self.stop_sources()
        deadline = time.monotonic() + DESTROY_TIMEOUT_S
        for source in self.sources:  # a source may sit in a connect or read timeout
            source.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.engine is not None:
            self.engine.stop.set()
            while not self.engine.finished.is_set() and time.monotonic() < deadline:
                try:  # the collector may be blocked on a full result queue nobody reads
                    self.results.get(timeout=0.1)
                except queue.Empty:
                    pass
            self.engine.shutdown()

    def camera_stats(self) -> list[CameraStats]:
        return list(self.stats)

    @property
    def batches(self) -> list[tuple[int, int]]:
        return list(self.engine.batches) if self.engine else []
