"""The Ascend device: the MindX SDK's StreamManagerApi behind the device boundary.

This module is the only place that imports the MindX SDK, and only inside `import_sdk` (importing it loads the
Ascend driver libraries). On a machine without the SDK, creating the device fails at once with a message that
says what is missing.

What it relies on, from the SDK's source (Ascend/VisionSDK, commit f156edc) rather than from its samples:
- results are fetched with `GetResult(stream, appsink, keys, timeout_ms)` from ONE thread (concurrent calls
  are not supported, api_Python.md "GetResult"); the timeout bounds every wait, so stopping is bounded too
  (GetProtobuf, by contrast, blocks with no timeout). A timeout answers APP_ERR_COMM_FAILURE (1001).
- the answer's metadataVec holds only the keys the buffer carried, each named by its message TYPE
  (StreamManagerApi.cpp GetResult): entries are taken by type, never by position. A buffer that carries an
  upstream plugin's error answers that error instead: the frame is counted as lost and logged.
- asking for an MxpiVisionList copies its picture to the host (PyDataHelper.cpp ParseVisionList). The camera
  size comes from the resize's picture (its preprocessInfo holds the source size and the paste area DVPP
  used), asked for only until every channel's size is known and then once every SIZE_RECHECK_S, never per
  frame and never the decoders' full-size pictures.
- every frame leaves mxpi_tensorinfer as its own buffer with batch dimension 1 (outputHasBatchDim = 1); the
  batch it ran in, its decode time and its latency are not reported: they are None here, never made up.

Verified against a double of that API (tests/pipeline/devices/fake_mindx.py) that follows those files;
verified only on a real Atlas box: the OM, DVPP and the NPU themselves (README, "On an Atlas box").
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pathlib
import queue
import stat
import threading
import time
import types
from typing import Dict, List, Optional, Tuple

import numpy as np

from models.errors import ModelError
from models.letterbox import LetterboxGeometry, letterbox_geometry
from models.spec import ModelSpec
from pipeline.config import expand_placeholders
from pipeline.devices.base import BaseDevice, DeviceError, DeviceSettings
from pipeline.graph import GraphPlan, plan_graph, validate_graph
from pipeline.types import CameraStats, FrameInfo, FrameResult

logger = logging.getLogger(__name__)

SDK_HINT = ("install the MindX SDK (mxVision) for this Atlas box and `source <sdk>/set_env.sh` (and CANN's "
            "set_env.sh) so that `import StreamManagerApi` works; use --device mock on machines without an NPU")
FRAME_INFO_KEY = "ReservedFrameInfo"  # MxpiBufferManager.cpp FRAME_INFO_KEY: the frame info's metadata key
# MxpiTensor.tensorDataType values (MindX SDK MxBase TensorDataType).
TENSOR_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 9: np.int64}
RESULT_QUEUE = 64
GET_RESULT_TIMEOUT_MS = 200
TIMED_OUT = 1001  # APP_ERR_COMM_FAILURE: "Get empty result, or exceed the time limit"
SIZE_RECHECK_S = 10.0
# What the SDK does not tell the host: reported as unknown, never as zero.
UNMEASURED = ("dropped", "skipped", "reconnects", "errors")


def import_sdk() -> types.SimpleNamespace:
    try:
        import MxpiDataType_pb2
        from StreamManagerApi import StreamManagerApi, StringVector
    except ImportError as exc:
        raise DeviceError(f"the Ascend device needs the MindX SDK, which is not importable here ({exc}): "
                          f"{SDK_HINT}") from exc
    return types.SimpleNamespace(StreamManagerApi=StreamManagerApi, StringVector=StringVector,
                                 MxpiDataType=MxpiDataType_pb2)


def check(api: str, code: int) -> None:
    if code != 0:
        raise DeviceError("MindX SDK call failed", api=api, code=code)


def check_om_file(path: pathlib.Path) -> None:
    """The SDK refuses an OM not owned by the running user or with permissions looser than 640."""
    try:
        info = path.stat()
    except OSError as exc:
        raise DeviceError(f"modelPath {path}: {exc.strerror}") from exc
    if info.st_uid != os.geteuid():
        raise DeviceError(f"modelPath {path}: owned by uid {info.st_uid}, the daemon runs as uid {os.geteuid()}; "
                          f"the MindX SDK requires the OM to belong to the running user (chown it)")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o137:
        raise DeviceError(f"modelPath {path}: mode {mode:o} is looser than 640; the MindX SDK refuses it "
                          f"(chmod 640 {path})")


class AscendDevice(BaseDevice):
    def __init__(self, sdk: Optional[types.SimpleNamespace] = None, device_root: str = "/dev", **_):
        self.sdk = sdk or import_sdk()
        self.device_root = pathlib.Path(device_root)
        self.api = None
        self.plan: Optional[GraphPlan] = None
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=RESULT_QUEUE)
        self.stats: List[CameraStats] = []
        self.stop_event = threading.Event()
        self.reader: Optional[threading.Thread] = None
        self.error: Optional[Exception] = None
        self.spec: Optional[ModelSpec] = None
        self.lost = 0  # buffers that reached the appsink with an upstream error, or without the model's output
        self.sizes: Dict[int, Tuple[int, int, LetterboxGeometry]] = {}  # channel -> camera size, geometry
        self._next_size_check = 0.0

    # --- start-up checks ------------------------------------------------------------------------------------
    def _checked_plan(self, graph: dict, settings: DeviceSettings) -> GraphPlan:
        problems = validate_graph(graph, device="ascend")
        plan, _ = plan_graph(graph)
        if problems or plan is None:
            raise DeviceError("invalid graph:\n  " + "\n  ".join(problems))
        if not (self.device_root / f"davinci{plan.device_id}").exists():
            present = sorted(p.name for p in self.device_root.glob("davinci[0-9]*"))
            raise DeviceError(f"stream_config.deviceId {plan.device_id}: no {self.device_root}/davinci{plan.device_id} "
                              f"(NPUs visible: {', '.join(present) or 'none'})")
        om = pathlib.Path(plan.model_path)
        check_om_file(om)
        try:
            spec = ModelSpec.load(om.parent)
        except ModelError as exc:
            raise DeviceError(f"modelPath {om}: {exc}") from exc
        if spec.model_format != "om" or spec.model_file != om.name:
            raise DeviceError(f"modelPath {om}: the manifest beside it describes {spec.model_file!r} "
                              f"({spec.model_format}), not this OM: convert with `inspector convert`")
        if spec.aipp is None:
            raise DeviceError(f"modelPath {om}: the manifest records no AIPP; the OM would expect RGB, not NV12")
        problems = validate_graph(graph, spec=spec)
        if max(spec.batch_gears) != settings.max_batch:
            problems.append(f"max batch {settings.max_batch}: the OM's largest gear is {max(spec.batch_gears)}, and "
                            f"mxpi_tensorinfer fills every batch to it (convert with gears up to {settings.max_batch})")
        if len(plan.cameras) != len(settings.cameras):
            problems.append(f"the graph has {len(plan.cameras)} sources, the settings {len(settings.cameras)} cameras")
        if problems:
            raise DeviceError("the graph disagrees with the OM's manifest:\n  " + "\n  ".join(problems))
        self.spec = spec
        return plan

    def create_streams(self, graph: dict, settings: DeviceSettings) -> None:
        plan = self._checked_plan(graph, settings)
        self.plan = plan
        self.stats = [CameraStats(c.camera_id, state="started", unmeasured=UNMEASURED) for c in settings.cameras]
        # The SDK needs real URLs: expand ${VAR} into a private copy that is never logged or written.
        expanded = copy.deepcopy(graph)
        for chain in plan.cameras:
            props = expanded[plan.stream][chain.source].get("props", {})
            if "rtspUrl" in props:
                props["rtspUrl"] = expand_placeholders(props["rtspUrl"], f"element {chain.source}: rtspUrl")
        self.api = self.sdk.StreamManagerApi()
        check("InitManager", self.api.InitManager())
        check("CreateMultipleStreams", self.api.CreateMultipleStreams(json.dumps(expanded).encode()))
        self.reader = threading.Thread(target=self._read_loop, name="ascend-results", daemon=True)
        self.reader.start()
        logger.info("ascend device: stream %s created with %d cameras, results from %s", plan.stream,
                    len(plan.cameras), plan.sink)

    # --- results --------------------------------------------------------------------------------------------
    def _keys(self, with_size: bool):
        keys = self.sdk.StringVector()
        for key in [self.plan.infer, FRAME_INFO_KEY] + ([self.plan.resize] if with_size else []):
            keys.push_back(key.encode())
        return keys

    def _read_loop(self) -> None:
        """The only caller of GetResult. Every wait is bounded by GET_RESULT_TIMEOUT_MS."""
        stream, sink = self.plan.stream.encode(), self.plan.sink.encode()
        plain, sized = self._keys(False), self._keys(True)
        try:
            while not self.stop_event.is_set():
                need_size = len(self.sizes) < len(self.stats) or time.monotonic() >= self._next_size_check
                answer = self.api.GetResult(stream, sink, sized if need_size else plain, GET_RESULT_TIMEOUT_MS)
                if answer.errorCode == TIMED_OUT:
                    continue
                if answer.errorCode != 0:
                    self._lost(f"the appsink delivered error {answer.errorCode}: {answer.errorMsg}")
                    continue
                result = self.parse(answer.metadataVec)
                if result is None:
                    continue
                stats = self.stats[result.info.channel_id]
                stats.processed += 1
                stats.state = "running"
                stats.frames_in = max(stats.frames_in, result.info.frame_id + 1)
                while not self.stop_event.is_set():
                    try:
                        self.results.put(result, timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # a device failure stops the daemon with this error
            self.error = exc
            logger.error("ascend device: %s", exc)

    def _lost(self, why: str) -> None:
        self.lost += 1
        if self.lost in (1, 10, 100) or self.lost % 1000 == 0:
            logger.warning("ascend device: a frame was lost (%d so far): %s", self.lost, why)

    def parse(self, metadata) -> Optional[FrameResult]:
        """One GetResult answer's metadataVec -> a FrameResult, by message type (entries may be omitted)."""
        md = self.sdk.MxpiDataType
        by_type = {item.dataType: item for item in metadata if item.errorCode == 0}
        if "MxpiTensorPackageList" not in by_type or "MxpiFrameInfo" not in by_type:
            self._lost(f"no {'model output' if 'MxpiTensorPackageList' not in by_type else 'frame info'} in the "
                       f"result (an element upstream failed on this frame)")
            return None
        frame = md.MxpiFrameInfo()
        frame.ParseFromString(by_type["MxpiFrameInfo"].serializedMetadata)
        channel = int(frame.channelId)
        if not 0 <= channel < len(self.stats):
            raise DeviceError(f"a result from channel {channel}, the stream has {len(self.stats)} cameras")
        if "MxpiVisionList" in by_type:
            self._learn_size(channel, by_type["MxpiVisionList"].serializedMetadata)
        if channel not in self.sizes:
            self._lost(f"camera {self.stats[channel].camera_id}: its picture size is not known yet")
            return None
        tensors = md.MxpiTensorPackageList()
        tensors.ParseFromString(by_type["MxpiTensorPackageList"].serializedMetadata)
        arrays = []
        for tensor in tensors.tensorPackageVec[0].tensorVec:
            dtype = TENSOR_DTYPES.get(tensor.tensorDataType)
            if dtype is None:
                raise DeviceError(f"tensor data type {tensor.tensorDataType} is not handled")
            array = np.frombuffer(tensor.dataStr, dtype=dtype).reshape(tuple(tensor.tensorShape))
            if array.shape[0] != 1:
                raise DeviceError(f"expected one frame per result, got a tensor of shape {array.shape}")
            arrays.append(array[0].astype(np.float32))
        width, height, geometry = self.sizes[channel]
        # Decode time, latency, the batch and its gear: the SDK reports none of them to the host.
        info = FrameInfo(self.stats[channel].camera_id, channel, int(frame.frameId), None, time.time(), None,
                         width, height)
        return FrameResult(info, geometry, tuple(arrays), None, None)

    def _learn_size(self, channel: int, serialized: bytes) -> None:
        vision = self.sdk.MxpiDataType.MxpiVisionList()
        vision.ParseFromString(serialized)
        info = vision.visionVec[0].visionInfo
        pre = info.preprocessInfo[0] if len(info.preprocessInfo) else None
        if pre is None:
            raise DeviceError(f"element {self.plan.resize}: its picture carries no preprocessInfo (source size)")
        width, height = int(pre.widthSrc), int(pre.heightSrc)
        geometry = letterbox_geometry(width, height, self.spec.input_width, self.spec.input_height,
                                      self.spec.letterbox.placement)
        previous = self.sizes.get(channel)
        if previous is not None and previous[:2] != (width, height):
            logger.warning("camera %s: picture size changed from %dx%d to %dx%d", self.stats[channel].camera_id,
                           previous[0], previous[1], width, height)
        self.sizes[channel] = (width, height, geometry)
        if len(self.sizes) == len(self.stats):
            self._next_size_check = time.monotonic() + SIZE_RECHECK_S

    def get_result(self, timeout_s: float) -> Optional[FrameResult]:
        try:
            return self.results.get(timeout=timeout_s)
        except queue.Empty:
            if self.error is not None:
                raise DeviceError(str(self.error)) from self.error
            return None

    def finished(self) -> bool:
        # Live RTSP streams never finish by themselves on the device; after stop_sources, once drained.
        return self.stop_event.is_set() and self.results.empty()

    def stop_sources(self) -> None:
        self.stop_event.set()

    def destroy(self) -> None:
        self.stop_event.set()
        if self.reader is not None:
            self.reader.join(timeout=5)  # GetResult waits at most GET_RESULT_TIMEOUT_MS
        if self.api is not None:
            code = self.api.DestroyAllStreams()
            self.api = None
            if code != 0:
                logger.error("DestroyAllStreams returned %d", code)

    def camera_stats(self) -> List[CameraStats]:
        return list(self.stats)

    def lost_frames(self) -> int:
        return self.lost
