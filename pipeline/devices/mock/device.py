"""The CPU mock device: runs a MindX stream graph with CPU emulations of its plugins.

Supported factories and the props it honours:
- mxpi_rtspsrc (rtspUrl, channelId) / filesrc (location): PyAV over TCP, guard/reconnect (source.py)
- queue: the per-camera FrameQueue (live: drop oldest, counted; file: lossless)
- mxpi_videodecoder (outputImageFormat YUV420SP_NV12): NV12, width aligned to 16, height to 2
- mxpi_skipframe (frameNum): one frame in frameNum + 1
- mxpi_parallel2serial: the batcher's round-robin over cameras
- mxpi_imageresize (resizeHeight, resizeWidth, resizeType Resizer_KeepAspectRatio_Fit): NV12 letterbox
- mxpi_tensorinfer (modelPath, waitingTime, dynamicStrategy): AIPP emulation + the CPU runtime
- mxpi_dataserialize, appsink: results handed to `get_result`
A graph with any other plugin is refused, naming the element and its factory.
"""

from __future__ import annotations

import logging
import pathlib
import queue
import threading
import time

from models.aipp import AippConfig
from models.errors import ModelError
from models.spec import ModelSpec
from pipeline.devices.base import BaseDevice, DeviceError, DeviceSettings
from pipeline.devices.mock.infer import STRATEGIES, InferenceEngine, InferSettings
from pipeline.devices.mock.queues import FrameQueue
from pipeline.devices.mock.source import CameraSource, SourceSpec
from pipeline.graph import LETTERBOX, SOURCE_FACTORIES, validate_graph
from pipeline.types import CameraStats, FrameResult

logger = logging.getLogger(__name__)

RESULT_QUEUE = 64
DESTROY_TIMEOUT_S = 30.0


def resolve_model(model_path: str) -> tuple[ModelSpec, pathlib.Path]:
    """modelPath names the OM; the mock runs the exported CPU model named by the manifest beside it (an export
    directory's model, or a converted directory's `cpu_model_file`)."""
    directory = pathlib.Path(model_path).parent
    try:
        spec = ModelSpec.load(directory)
    except ModelError as exc:
        raise DeviceError(f"modelPath {model_path}: {exc}") from exc
    name = spec.cpu_model_file if spec.model_format == "om" else spec.model_file
    if not name or not spec.outputs.get("decoded"):
        raise DeviceError(f"modelPath {model_path}: the manifest names no decoded CPU model file "
                          "(export without --raw; a converted directory keeps the ONNX as cpu_model_file)")
    model_file = directory / name
    if not model_file.is_file():
        raise DeviceError(f"modelPath {model_path}: {model_file} (from manifest.json) does not exist")
    return spec, model_file


class MockDevice(BaseDevice):
    def __init__(self, runtime: str | None = None):
        self.runtime = runtime
        self.stop_event = threading.Event()
        self.ready = threading.Condition()
        self.sources: list[CameraSource] = []
        self.stats: list[CameraStats] = []
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=RESULT_QUEUE)
        self.engine: InferenceEngine | None = None
        self.spec: ModelSpec | None = None

    def create_streams(self, graph: dict, settings: DeviceSettings) -> None:
        problems = validate_graph(graph, for_mock=True)
        if problems:
            raise DeviceError("the graph cannot run on the mock device:\n  " + "\n  ".join(problems))
        if len(graph) != 1:
            raise DeviceError(f"the mock device runs one stream, the graph has {len(graph)}")
        elements = {k: v for k, v in next(iter(graph.values())).items() if k != "stream_config"}
        sources = [name for name, e in elements.items() if e["factory"] in SOURCE_FACTORIES]
        if len(sources) != len(settings.cameras):
            raise DeviceError(f"the graph has {len(sources)} sources, the settings {len(settings.cameras)} cameras")
        resize = self._single(elements, "mxpi_imageresize")
        infer = self._single(elements, "mxpi_tensorinfer")
        resize_type = resize[1].get("props", {}).get("resizeType", LETTERBOX)
        if resize_type != LETTERBOX:
            raise DeviceError(f"element {resize[0]!r}: resizeType {resize_type!r} is not emulated "
                              f"(only {LETTERBOX})")
        props = infer[1]["props"]
        spec, model_file = resolve_model(props["modelPath"])
        problems = validate_graph(graph, spec=spec)
        if problems:
            raise DeviceError("the graph disagrees with the model:\n  " + "\n  ".join(problems))
        strategy = props.get("dynamicStrategy", "Nearest")
        if strategy not in STRATEGIES:
            raise DeviceError(f"element {infer[0]!r}: dynamicStrategy {strategy!r} is not one of {STRATEGIES}")
        gears = tuple(g for g in spec.batch_gears if g <= settings.max_batch)
        if settings.max_batch not in spec.batch_gears:
            raise DeviceError(f"max batch {settings.max_batch} is not a gear of the model {list(spec.batch_gears)}")
        self.spec = spec

        for channel, (name, camera) in enumerate(zip(sources, settings.cameras)):
            chain = self._chain(elements, name)
            decoder = chain.get("mxpi_videodecoder")
            if decoder is None:
                raise DeviceError(f"element {name!r}: no mxpi_videodecoder follows the source")
            fmt = decoder.get("props", {}).get("outputImageFormat", "YUV420SP_NV12")
            if fmt != "YUV420SP_NV12":
                raise DeviceError(f"decoder of {name!r}: outputImageFormat {fmt!r} is not emulated (YUV420SP_NV12)")
            src_props = elements[name].get("props", {})
            is_rtsp = elements[name]["factory"] == "mxpi_rtspsrc"
            skip = int(chain.get("mxpi_skipframe", {}).get("props", {}).get("frameNum", "0"))
            stats = CameraStats(camera.camera_id)
            live = camera.mode == "live"
            frame_queue = FrameQueue(settings.live_queue if live else max(settings.live_queue, 8), live, self.ready)
            source = CameraSource(
                SourceSpec(camera.camera_id, channel, src_props["rtspUrl"] if is_rtsp else src_props["location"],
                           is_rtsp, live, skip, camera.max_frames, camera.loop, camera.rate_fps,
                           camera.no_frame_timeout_s, backoff_max_s=camera.reconnect_max_s),
                frame_queue, stats, self.stop_event)
            self.sources.append(source)
            self.stats.append(stats)

        self.engine = InferenceEngine(
            spec, AippConfig.for_model(spec),
            InferSettings(str(model_file), self.runtime, gears, int(props.get("waitingTime", "5000")) / 1000.0,
                          strategy, settings.in_flight, settings.threads),
            [s.queue for s in self.sources], self.ready, self._sources_done,
            {i: s for i, s in enumerate(self.stats)}, self.results)
        for source in self.sources:
            source.start()
        self.engine.start()  # after the sources: with none started, it would see them all done
        logger.info("mock device: %d cameras, model %s (%s), gears %s, waitingTime %s ms, %s",
                    len(self.sources), model_file.name, spec.architecture, list(gears),
                    props.get("waitingTime", "5000"), strategy)

    @staticmethod
    def _single(elements: dict, factory: str) -> tuple[str, dict]:
        found = [(n, e) for n, e in elements.items() if e["factory"] == factory]
        if len(found) != 1:
            raise DeviceError(f"the mock device needs exactly one {factory}, the graph has {len(found)}")
        return found[0]

    @staticmethod
    def _chain(elements: dict, start: str) -> dict[str, dict]:
        """Elements from a source up to the merge, by factory."""
        chain, name, seen = {}, start, set()
        while name and name not in seen:
            seen.add(name)
            element = elements[name]
            if element["factory"] == "mxpi_parallel2serial":
                break
            chain[element["factory"]] = element
            nxt = element.get("next")
            if isinstance(nxt, list):
                raise DeviceError(f"element {name!r}: a camera chain cannot branch (next {nxt})")
            name = nxt.split(":", 1)[0] if nxt else None
        return chain

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
