"""The Ascend device: the MindX SDK's StreamManagerApi behind the device boundary.

This module is the only place that imports the MindX SDK, and only inside `import_sdk` (importing it loads the
Ascend driver libraries). On a machine without the SDK, creating the device fails at once with a message that
says what is missing.

Call sequence (MindX SDK Python API, as in the SDK's samples): `StreamManagerApi()`, `InitManager()`,
`CreateMultipleStreams(graph bytes)`, then per frame `GetProtobuf(stream, 0, keys)` returning a list of
`MxProtobufOut` (`errorCode`, `messageName`, `messageBuf`) that parse into `MxpiDataType_pb2` messages;
finally `DestroyAllStreams()`. Every non-zero return code becomes a DeviceError carrying the API name and code.

Verified here against a double of that API (tests/pipeline/devices/fake_mindx.py) that follows the documented
calls and message fields; verified only on a real Atlas box: the SDK's actual message layout for batched
tensorinfer output, the frame-info key, and DVPP/NPU behaviour itself (README, "On an Atlas box").
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

import numpy as np

from models.errors import ModelError
from models.letterbox import letterbox_geometry
from models.spec import ModelSpec
from pipeline.config import expand_placeholders
from pipeline.devices.base import BaseDevice, DeviceError, DeviceSettings
from pipeline.graph import SOURCE_FACTORIES, validate_graph
from pipeline.types import CameraStats, FrameInfo, FrameResult

logger = logging.getLogger(__name__)

SDK_HINT = ("install the MindX SDK (mxVision) for this Atlas box and `source <sdk>/set_env.sh` (and CANN's "
            "set_env.sh) so that `import StreamManagerApi` works; use --device mock on machines without an NPU")
FRAME_INFO_KEY = b"ReservedFrameInfo"
# MxpiTensor.tensorDataType values (MindX SDK MxBase TensorDataType).
TENSOR_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 9: np.int64}
RESULT_QUEUE = 64


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
    def __init__(self, sdk: types.SimpleNamespace | None = None, device_root: str = "/dev", **_):
        self.sdk = sdk or import_sdk()
        self.device_root = pathlib.Path(device_root)
        self.api = None
        self.stream_name = b""
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=RESULT_QUEUE)
        self.stats: list[CameraStats] = []
        self.stop_event = threading.Event()
        self.reader: threading.Thread | None = None
        self.error: Exception | None = None
        self.spec: ModelSpec | None = None

    # --- start-up checks ------------------------------------------------------------------------------------
    def _checked_spec(self, graph: dict, settings: DeviceSettings) -> tuple[str, dict]:
        problems = validate_graph(graph)
        if problems:
            raise DeviceError("invalid graph:\n  " + "\n  ".join(problems))
        if len(graph) != 1:
            raise DeviceError(f"the daemon runs one stream, the graph has {len(graph)}")
        name, stream = next(iter(graph.items()))
        device_id = stream.get("stream_config", {}).get("deviceId", "0")
        if not (self.device_root / f"davinci{device_id}").exists():
            present = sorted(p.name for p in self.device_root.glob("davinci[0-9]*"))
            raise DeviceError(f"stream_config.deviceId {device_id}: no {self.device_root}/davinci{device_id} "
                              f"(NPUs visible: {', '.join(present) or 'none'})")
        infer = [e for e in stream.values() if isinstance(e, dict) and e.get("factory") == "mxpi_tensorinfer"]
        if len(infer) != 1:
            raise DeviceError(f"expected one mxpi_tensorinfer, the graph has {len(infer)}")
        om = pathlib.Path(infer[0]["props"]["modelPath"])
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
        if settings.max_batch not in spec.batch_gears:
            problems.append(f"max batch {settings.max_batch} is not a gear of the OM {list(spec.batch_gears)}")
        if problems:
            raise DeviceError("the graph disagrees with the OM's manifest:\n  " + "\n  ".join(problems))
        self.spec = spec
        return name, stream

    def create_streams(self, graph: dict, settings: DeviceSettings) -> None:
        name, stream = self._checked_spec(graph, settings)
        sources = [n for n, e in stream.items() if isinstance(e, dict) and e.get("factory") in SOURCE_FACTORIES]
        self.stats = [CameraStats(c.camera_id) for c in settings.cameras]
        self.decoder_keys = [f"mxpi_videodecoder{i}".encode() for i in range(len(sources))]
        # The SDK needs real URLs: expand ${VAR} into a private copy that is never logged or written.
        expanded = copy.deepcopy(graph)
        for source in sources:
            props = expanded[name][source].get("props", {})
            if "rtspUrl" in props:
                props["rtspUrl"] = expand_placeholders(props["rtspUrl"], f"element {source}: rtspUrl")
        self.api = self.sdk.StreamManagerApi()
        check("InitManager", self.api.InitManager())
        check("CreateMultipleStreams", self.api.CreateMultipleStreams(json.dumps(expanded).encode()))
        for stats in self.stats:
            stats.state = "running"
        self.stream_name = name.encode()
        self.reader = threading.Thread(target=self._read_loop, name="ascend-results", daemon=True)
        self.reader.start()
        logger.info("ascend device: stream %s created with %d cameras", name, len(sources))

    # --- results --------------------------------------------------------------------------------------------
    def _keys(self):
        keys = self.sdk.StringVector()
        for key in [b"mxpi_tensorinfer0", FRAME_INFO_KEY] + self.decoder_keys:
            keys.push_back(key)
        return keys

    def _read_loop(self) -> None:
        keys = self._keys()
        try:
            while not self.stop_event.is_set():
                outputs = self.api.GetProtobuf(self.stream_name, 0, keys)
                if not outputs:
                    continue
                result = self.parse_outputs(outputs)
                if result is None:
                    continue
                self.stats[result.info.channel_id].processed += 1
                self.stats[result.info.channel_id].frames_in = max(self.stats[result.info.channel_id].frames_in,
                                                                   result.info.frame_id + 1)
                while not self.stop_event.is_set():
                    try:
                        self.results.put(result, timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # a device failure stops the daemon with this error
            self.error = exc
            logger.error("ascend device: %s", exc)

    def parse_outputs(self, outputs) -> FrameResult | None:
        """One GetProtobuf answer -> a FrameResult. The answer has one entry per requested key, in order:
        tensors, frame info, then one per camera decoder. A non-zero errorCode on the tensors or the frame info
        is a device error; on a decoder key it only means the frame came from another camera."""
        md = self.sdk.MxpiDataType
        if len(outputs) < 3:
            raise DeviceError(f"GetProtobuf answered {len(outputs)} entries for {2 + len(self.decoder_keys)} keys")
        for item, key in zip(outputs[:2], ("mxpi_tensorinfer0", "ReservedFrameInfo")):
            if item.errorCode != 0:
                raise DeviceError(f"no {key} in the result", api="GetProtobuf", code=item.errorCode)
        tensors = md.MxpiTensorPackageList()
        tensors.ParseFromString(outputs[0].messageBuf)
        frame = md.MxpiFrameInfo()
        frame.ParseFromString(outputs[1].messageBuf)
        pictures = [item for item in outputs[2:] if item.errorCode == 0]
        if len(pictures) != 1:
            raise DeviceError(f"expected the picture of exactly one decoder, got {len(pictures)}")
        vision = md.MxpiVisionList()
        vision.ParseFromString(pictures[0].messageBuf)
        package = tensors.tensorPackageVec[0]
        arrays = []
        for tensor in package.tensorVec:
            dtype = TENSOR_DTYPES.get(tensor.tensorDataType)
            if dtype is None:
                raise DeviceError(f"tensor data type {tensor.tensorDataType} is not handled")
            array = np.frombuffer(tensor.dataStr, dtype=dtype).reshape(tuple(tensor.tensorShape))
            if array.shape[0] != 1:
                raise DeviceError(f"expected one frame per result, got a tensor of shape {array.shape}")
            arrays.append(array[0].astype(np.float32))
        info = vision.visionVec[0].visionInfo
        width, height = int(info.width), int(info.height)
        channel = int(frame.channelId)
        now = time.time()
        frame_info = FrameInfo(self.stats[channel].camera_id, channel, int(frame.frameId), None, now,
                               time.monotonic(), width, height)
        geometry = letterbox_geometry(width, height, self.spec.input_width, self.spec.input_height,
                                      self.spec.letterbox.placement)
        return FrameResult(frame_info, geometry, tuple(arrays), 1, 1)

    def get_result(self, timeout_s: float) -> FrameResult | None:
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
        if self.api is not None:
            code = self.api.DestroyAllStreams()
            self.api = None
            if code != 0:
                logger.error("DestroyAllStreams returned %d", code)
        if self.reader is not None:
            self.reader.join(timeout=5)

    def camera_stats(self) -> list[CameraStats]:
        return list(self.stats)
