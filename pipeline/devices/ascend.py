"""The Ascend device: the MindX SDK's StreamManagerApi behind the device boundary.

This module is the only place that imports the MindX SDK, and only inside `import_sdk` (importing it loads the
Ascend driver libraries). On a machine without the SDK, creating the device fails at once with a message that
says what is missing.

What it relies on, from the SDK's source (Ascend/VisionSDK, commit f156edc) rather than from its samples:
- results are fetched with `GetResult(stream, appsink, keys, timeout_ms)` from ONE thread (concurrent calls
  are not supported, api_Python.md "GetResult"); the timeout bounds every wait, so stopping is bounded too
  (GetProtobuf, by contrast, blocks with no timeout). A timeout answers APP_ERR_COMM_FAILURE (1001) with
  its own message; a buffer a plugin refused with 1001 carries the plugin's message instead (`timed_out`).
- every string of an answer is bytes (StreamManagerApi.i builds with SWIG_PYTHON_STRICT_BYTE_CHAR): message
  types are compared as decoded text (`entries_by_type`), every argument is passed as bytes.
- InitManager starts the stream manager's threads before it checks the process's user (MxStreamManager.cpp),
  and refuses a user who does not own the SDK's libmxbase.so (DeviceManager.cpp UserPermissionCheck): the
  device checks the owner first with a message that says what to do, and destroys the SDK after any failed
  start, so that a failed start never leaves threads that keep the process alive.
- the answer's metadataVec holds only the keys the buffer carried, each named by its message TYPE
  (StreamManagerApi.cpp GetResult): entries are taken by type, never by position. A buffer that carries an
  upstream plugin's error answers that error instead: the frame is counted as lost and logged.
- asking for an MxpiVisionList copies its picture to the host (PyDataHelper.cpp ParseVisionList). The camera
  size comes from the resize's picture (its preprocessInfo holds the source size and the paste area DVPP
  used), asked for only until every channel's size is known and then once every SIZE_RECHECK_S, never per
  frame and never the decoders' full-size pictures.
- every frame leaves mxpi_tensorinfer as its own buffer with batch dimension 1 (outputHasBatchDim = 1); the
  batch it ran in, its decode time and its latency are not reported: they are None here, never made up.

A second stage (docs/cascade.md) runs in a second stream (pipeline/graph.py `inspector_stage2`:
appsrc -> mxpi_tensorinfer -> appsink). The first model's objects come out of the first stream as tensors that
the host decodes, so no element of that stream holds boxes an mxpi_imagecrop could read (MxpiImageCrop.cpp
reads an MxpiObjectList from its dataSource): the host cuts the crops itself and sends them back in.
- with a second stage, every first-stage result also carries the decoded full-resolution picture (the key the
  resize reads, i.e. mxpi_parallel2serial0): one device-to-host copy of the NV12 frame per frame, the cost of
  host-side cropping (about 3.1 MB at 1080p; counted by the double). It replaces the resize's picture for the
  camera size (its visionInfo width/height) and serves snapshots too.
- the crops (pipeline/devices/cutter.py, the same pixels as on the mock device) go to the second stream as ONE buffer
  per frame: an MxpiTensorPackageList of uint8 NV12 tensors of h*w*1.5 bytes with the dims mxpi_tensorinfer reads from
  the OM, [1, h, w, 3] (`crop_dims`), host memory in `dataStr` (memType 0; the SDK copies it in, PyDataHelper.cpp
  ReBuildTensorPackageList; the SDK's own sample does the same:
  mxStream/samples/streamserver/streamserverSourceCode/model_server.py send_inputs), with the frame's channel and id
  as a second key (MxsmStream.cpp SendProtobufComm adds every protobuf of the vector to the buffer), sent with
  SendProtobuf (needs protobuf 4.25.1 on the box, api_Python.md "SendProtobuf").
- mxpi_tensorinfer batches the packages of several buffers (MxpiTensorInfer.cpp: each package is one item of
  dataQueue_) and returns each buffer with one output package per crop, in order; the reader does not wait for
  them: it keeps reading the first stream and hands frames on in order once their crops are back. A frame whose
  crops do not come back within STAGE2_TIMEOUT_S (or that is behind STAGE2_PENDING others) goes on without
  them, its crops counted as not examined.

Verified against a double of that API (tests/pipeline/devices/fake_mindx.py) that follows those files;
verified only on a real Atlas box: the OM, DVPP and the NPU themselves (README, "On an Atlas box").
"""

from __future__ import annotations

import collections
import copy
import dataclasses
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

from core.logcount import worth_saying
from models.letterbox import LetterboxGeometry, letterbox_geometry
from models.spec import ModelSpec
from pipeline.config import expand_placeholders
from pipeline.devices.base import BaseDevice, DeviceError, DeviceSettings, RunPlan
from pipeline.graph import GraphReading
from pipeline.types import CameraStats, CropOutput, FrameInfo, FrameResult

logger = logging.getLogger(__name__)

SDK_LIBRARY = "lib/libmxbase.so"  # DeviceManager.cpp MXBASE_LIB_PATH, under MX_SDK_HOME
SDK_HINT = ("install the MindX SDK (mxVision) for this Atlas box and `source <sdk>/set_env.sh` (and CANN's "
            "set_env.sh) so that `import StreamManagerApi` works; use --device mock on machines without an NPU")
FRAME_INFO_KEY = "ReservedFrameInfo"  # MxpiBufferManager.cpp FRAME_INFO_KEY: the frame info's metadata key
# MxpiTensor.tensorDataType values (MindX SDK MxBase TensorDataType).
TENSOR_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 9: np.int64}
RESULT_QUEUE = 64
GET_RESULT_TIMEOUT_MS = 200
COMM_FAILURE = 1001  # APP_ERR_COMM_FAILURE: a timeout, and also what many plugins' refusals answer
STREAM_NOT_EXIST = 6002  # APP_ERR_STREAM_NOT_EXIST: the stream is gone (destroyed, or never created)
TIMEOUT_TEXT = b"Get empty result, or exceed the time limit"  # MxsmStream.cpp GetResult: the timeout's errorMsg
SIZE_RECHECK_S = 10.0
PICTURE_WAIT_S = 5.0  # a camera's asking for a picture ends after this long without one of its frames
# What the SDK does not tell the host: reported as unknown, never as zero.
UNMEASURED = ("dropped", "skipped", "reconnects", "errors")
UINT8 = 4  # MxBase TensorDataType.h TENSOR_DTYPE_UINT8
HOST_MEMORY = 0  # MxpiDataType.proto MXPI_MEMORY_HOST
CROPS_TAG_KEY = "inspector_crops_of"  # the second key of a crops buffer: the frame it belongs to
STAGE2_POLL_MS = 5  # the reader's wait on either stream while crops are out
STAGE2_TIMEOUT_S = 10.0
STAGE2_PENDING = 64  # frames held for their crops, at most (the oldest then goes on without them)


def crop_dims(height: int, width: int) -> List[int]:
    """The shape of one crop sent to the second stream: the model's input dims as mxpi_tensorinfer reads them
    (ModelInferenceProcessor -> aclmdlGetInputDims, V1: for a static AIPP YUV420SP_U8 model n, h, w, c of the
    picture, NHWC, c = 3), batch 1. mxpi_tensorinfer only warns about a shape it does not expect; what it
    enforces is the byte count, h * w * 1.5 (MxpiTensorInfer.cpp CheckTensorShape, CheckTensorDatasize)."""
    return [1, height, width, 3]


def import_sdk() -> types.SimpleNamespace:
    try:
        import MxpiDataType_pb2
        from StreamManagerApi import InProtobufVector, MxProtobufIn, StreamManagerApi, StringVector
    except ImportError as exc:
        raise DeviceError(f"the Ascend device needs the MindX SDK, which is not importable here ({exc}): "
                          f"{SDK_HINT}") from exc
    return types.SimpleNamespace(StreamManagerApi=StreamManagerApi, StringVector=StringVector,
                                 MxpiDataType=MxpiDataType_pb2, MxProtobufIn=MxProtobufIn,
                                 InProtobufVector=InProtobufVector)


def check(api: str, code: int) -> None:
    if code != 0:
        raise DeviceError("MindX SDK call failed", api=api, code=code)


def text(value) -> str:
    """A string field of an SDK answer: bytes, as the SWIG binding builds it (StreamManagerApi.i defines
    SWIG_PYTHON_STRICT_BYTE_CHAR), decoded for logs and comparisons."""
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def entries_by_type(metadata) -> Dict[str, object]:
    """GetResult's metadataVec by message type name (dataType: bytes such as b"MxpiFrameInfo"), errored entries
    left out."""
    return {text(item.dataType): item for item in metadata if item.errorCode == 0}


def timed_out(answer) -> bool:
    """GetResult's 1001 is a timeout only when its message says so: a buffer refused by a plugin with
    APP_ERR_COMM_FAILURE answers 1001 too, with the plugin's message (MxsmStream.cpp GetResult,
    GenerateMetaAndBufferOutput)."""
    return answer.errorCode == COMM_FAILURE and TIMEOUT_TEXT in bytes(answer.errorMsg or b"")


def sdk_owner_problem(home: Optional[str] = None) -> Optional[str]:
    """Why the SDK would refuse this process at InitManager, or None: MX_SDK_HOME unset, or its libmxbase.so not
    owned by the process's real user (DeviceManager.cpp UserPermissionCheck -> FileUtils.cpp ConstrainOwner,
    which compares with getuid(); the mxVision install guide: the install user and the run user are the same).
    The service must run as the SDK's owner."""
    home = home if home is not None else os.environ.get("MX_SDK_HOME")
    if not home:
        return "MX_SDK_HOME is not set (source the MindX SDK's set_env.sh, or bin/inspector-env)"
    library = pathlib.Path(home) / SDK_LIBRARY
    try:
        owner = library.stat().st_uid
    except OSError as exc:
        return f"{library}: {exc.strerror}: MX_SDK_HOME does not point at an mxVision install"
    if owner != os.getuid():
        return (f"{library} belongs to uid {owner}, this process runs as uid {os.getuid()}: the MindX SDK refuses "
                f"to start (\"Check user permission failed\"); run the daemon as the user that installed the SDK "
                f"(install.sh detects it)")
    return None


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
    kind = "ascend"

    def __init__(self, sdk: Optional[types.SimpleNamespace] = None, device_root: str = "/dev", **_):
        self.sdk = sdk or import_sdk()
        self.device_root = pathlib.Path(device_root)
        self.api = None
        self.streams: Optional[GraphReading] = None  # the graph's reading, from the run plan
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=RESULT_QUEUE)
        self.stats: List[CameraStats] = []
        self.stop_event = threading.Event()
        self.reader: Optional[threading.Thread] = None
        self.error: Optional[Exception] = None
        self.spec: Optional[ModelSpec] = None
        self.lost = 0  # buffers that reached the appsink with an upstream error, or without the model's output
        self.sizes: Dict[int, Tuple[int, int, LetterboxGeometry]] = {}  # channel -> camera size, geometry
        self._next_size_check = 0.0
        self.planner = None  # pipeline.devices.cutter.CropPlanner, with a second stage
        self.spec2: Optional[ModelSpec] = None
        self.picture_key: Optional[str] = None  # the decoded picture's key, with a second stage
        # Without a second stage, the picture is asked for only while the host wants one (request_picture):
        # the key to ask by, and the channels whose next frame should bring it.
        self.sample_key: Optional[str] = None
        self.wanted: Dict[int, float] = {}  # channel -> monotonic time the asking ends (a camera may go silent)
        self._wanted_lock = threading.Lock()
        self.pictures_copied = 0  # pictures that crossed to the host for the host's asking (samples)
        self.pending: "collections.deque[_Pending]" = collections.deque()  # frames in order, some awaiting crops
        self.crops_lost = 0  # crops sent to the second stream whose results never came

    # --- start-up checks ------------------------------------------------------------------------------------
    def _check(self, plan: RunPlan) -> None:
        """What only this device sees (the graph, the models and the config were checked against each other in
        the plan): the NPU, and the OMs as the SDK will load them."""
        self.check_plan_kind(plan)
        streams, spec = plan.streams, plan.spec
        if not (self.device_root / f"davinci{streams.device_id}").exists():
            present = sorted(p.name for p in self.device_root.glob("davinci[0-9]*"))
            raise DeviceError(f"stream_config.deviceId {streams.device_id}: no {self.device_root}/davinci"
                              f"{streams.device_id} (NPUs visible: {', '.join(present) or 'none'})")
        om = pathlib.Path(streams.model_path)
        check_om_file(om)
        if spec.model_format != "om" or spec.model_file != om.name:
            raise DeviceError(f"modelPath {om}: the manifest beside it describes {spec.model_file!r} "
                              f"({spec.model_format}), not this OM: convert with `inspector convert`")
        if spec.aipp is None:
            raise DeviceError(f"modelPath {om}: the manifest records no AIPP; the OM would expect RGB, not NV12")
        self.spec = spec
        decoded = streams.decoded_picture_key
        if plan.settings.stage2 is not None:
            self._check_stage2(streams, plan.spec2, plan.settings, decoded)
        else:
            self.sample_key = decoded

    def _check_stage2(self, streams: GraphReading, spec2: ModelSpec, settings: DeviceSettings,
                      decoded: Optional[str]) -> None:
        from pipeline.devices.cutter import CropPlanner

        om = pathlib.Path(streams.stage2.model_path or "")
        check_om_file(om)
        if spec2.model_format != "om" or spec2.model_file != om.name or spec2.aipp is None:
            raise DeviceError(f"stream {streams.stage2.stream}: modelPath {om}: the manifest beside it does not "
                              f"describe this OM with its AIPP: convert the second model with `inspector convert`")
        if spec2.input_width % 16 or spec2.input_height % 2:
            # The host sends NV12 of exactly the model's input size; DVPP's 16-aligned rows would not fit it.
            raise DeviceError(f"stream {streams.stage2.stream}: the second model's input {spec2.input_width}x"
                              f"{spec2.input_height}: the width must be a multiple of 16 and the height even")
        self.picture_key = decoded
        if decoded is None:
            raise DeviceError(f"element {streams.resize}: with a second stage its dataSource must name the decoded "
                              f"picture (the host crops from it)")
        self.spec2 = spec2
        self.planner = CropPlanner(spec2, settings.stage2)

    def create_streams(self, plan: RunPlan) -> None:
        self._check(plan)
        streams = self.streams = plan.streams
        self.stats = [CameraStats(c.camera_id, state="started", unmeasured=UNMEASURED) for c in plan.settings.cameras]
        # The SDK needs real URLs: expand ${VAR} into a private copy that is never logged or written.
        expanded = copy.deepcopy(plan.graph)
        for chain in streams.cameras:
            props = expanded[streams.stream][chain.source].get("props", {})
            if "rtspUrl" in props:
                props["rtspUrl"] = expand_placeholders(props["rtspUrl"], f"element {chain.source}: rtspUrl")
        owner = sdk_owner_problem()
        if owner is not None:
            raise DeviceError(owner)
        self.api = self.sdk.StreamManagerApi()
        try:
            code = self.api.InitManager()
            if code != 0:
                raise DeviceError("MindX SDK call failed (the SDK's log under $MX_SDK_HOME/logs says why; common "
                                  "causes: set_env.sh not sourced, the SDK's files not owned by this user)",
                                  api="InitManager", code=code)
            check("CreateMultipleStreams", self.api.CreateMultipleStreams(json.dumps(expanded).encode()))
        except BaseException:
            # InitManager starts the stream manager's threads even when it then fails (MxStreamManager.cpp:
            # CreateManagementThreads before DeviceManager::InitDevices); only DestroyAllStreams ends them.
            self._destroy_api()
            raise
        self.reader = threading.Thread(target=self._read_loop, name="ascend-results", daemon=True)
        self.reader.start()
        logger.info("ascend device: stream %s created with %d cameras, results from %s", streams.stream,
                    len(streams.cameras), streams.sink)

    # --- results --------------------------------------------------------------------------------------------
    def request_picture(self, camera_id: str) -> None:
        """The camera's next frame comes with the decoded picture: GetResult asks for the picture's key while a
        camera waits for one (an answer may be another camera's frame: its picture crosses too, and is handed on
        with it), then stops asking."""
        if self.sample_key is None or self.picture_key is not None:
            return  # no key to ask by (the graph's resize reads `auto`), or every frame brings one already
        channel = next((i for i, s in enumerate(self.stats) if s.camera_id == camera_id), None)
        if channel is not None:
            with self._wanted_lock:
                self.wanted[channel] = time.monotonic() + PICTURE_WAIT_S

    def _wanting(self) -> bool:
        """Whether a camera waits for its picture; an asking that outlived PICTURE_WAIT_S (the camera went
        silent) ends, so the other cameras' pictures do not cross for ever."""
        if not self.wanted:
            return False
        now = time.monotonic()
        with self._wanted_lock:
            for channel in [c for c, until in self.wanted.items() if until < now]:
                del self.wanted[channel]
            return bool(self.wanted)

    def _keys(self, with_size: bool, with_picture: bool = False):
        keys = self.sdk.StringVector()
        if self.picture_key is not None:  # the decoded picture, every frame: it gives the size too
            names = [self.streams.infer, FRAME_INFO_KEY, self.picture_key]
        elif with_picture:  # a sample is due: the picture, which also gives the size
            names = [self.streams.infer, FRAME_INFO_KEY, self.sample_key]
        else:
            names = [self.streams.infer, FRAME_INFO_KEY] + ([self.streams.resize] if with_size else [])
        for key in names:
            keys.push_back(key.encode())
        return keys

    def _read_loop(self) -> None:
        """The only caller of GetResult (both streams). Every wait is bounded by GET_RESULT_TIMEOUT_MS."""
        stream, sink = self.streams.stream.encode(), self.streams.sink.encode()
        plain, sized = self._keys(False), self._keys(True)
        pictured = self._keys(True, with_picture=True) if self.sample_key is not None else None
        try:
            while not self.stop_event.is_set():
                need_size = len(self.sizes) < len(self.stats) or time.monotonic() >= self._next_size_check
                awaiting = any(p.plans for p in self.pending)
                keys = pictured if self._wanting() else sized if need_size else plain
                answer = self.api.GetResult(stream, sink, keys,
                                            STAGE2_POLL_MS if awaiting else GET_RESULT_TIMEOUT_MS)
                if answer.errorCode == 0:
                    result = self.parse(answer.metadataVec, keys is pictured)
                    if result is not None:
                        self._accept(result)
                elif answer.errorCode == STREAM_NOT_EXIST:
                    raise DeviceError(f"stream {self.streams.stream} no longer exists: {text(answer.errorMsg).strip()}",
                                      api="GetResult", code=answer.errorCode)
                elif not timed_out(answer):
                    self._lost(f"the appsink delivered error {answer.errorCode}: {text(answer.errorMsg).strip()}")
                if self.planner is not None:
                    self._collect_crops()
                self._hand_on()
        except Exception as exc:  # a device failure stops the daemon with this error
            self.error = exc
            logger.error("ascend device: %s", exc)

    def _accept(self, result: FrameResult) -> None:
        stats = self.stats[result.info.channel_id]
        stats.processed += 1
        stats.state = "running"
        stats.frames_in = max(stats.frames_in, result.info.frame_id + 1)
        plans, skipped = [], 0
        if self.planner is not None:
            stage1, plans, skipped = self.planner.plan(result.tensors, result.geometry, result.info.width,
                                                       result.info.height)
            result = dataclasses.replace(result, stage1=stage1)
            if plans:
                self._send_crops(result, plans)
        self.pending.append(_Pending(result, plans, skipped, time.monotonic()))

    def _hand_on(self) -> None:
        """Frames go on in the order they came, each once its crops are back (or given up)."""
        now = time.monotonic()
        for item in self.pending:
            if item.plans and (now - item.sent > STAGE2_TIMEOUT_S or len(self.pending) > STAGE2_PENDING):
                self._give_up(item, f"no answer from the second stage within {STAGE2_TIMEOUT_S:g} s"
                              if now - item.sent > STAGE2_TIMEOUT_S else f"{len(self.pending)} frames waiting")
        while self.pending and not self.pending[0].plans and not self.stop_event.is_set():
            item = self.pending.popleft()
            result = dataclasses.replace(item.result, crops=item.crops, crops_skipped=item.skipped) \
                if self.planner is not None else item.result
            while not self.stop_event.is_set():  # the host is behind: hold the reader (the SDK's queues fill)
                try:
                    self.results.put(result, timeout=0.5)
                    break
                except queue.Full:
                    continue

    # --- the second stage -----------------------------------------------------------------------------------
    def _send_crops(self, result: FrameResult, plans) -> None:
        md = self.sdk.MxpiDataType
        h2, w2 = self.spec2.input_height, self.spec2.input_width
        crops = md.MxpiTensorPackageList()
        for plan in plans:
            data = self.planner.cut(result.nv12, plan)
            tensor = crops.tensorPackageVec.add().tensorVec.add()
            tensor.tensorDataType = UINT8
            tensor.memType = HOST_MEMORY
            tensor.deviceId = int(self.streams.device_id)
            tensor.tensorShape.extend(crop_dims(h2, w2))
            tensor.dataStr = data.tobytes()
            tensor.tensorDataSize = data.nbytes
        tag = md.MxpiFrameInfo()
        tag.channelId, tag.frameId = result.info.channel_id, result.info.frame_id
        vector = self.sdk.InProtobufVector()
        for key, kind, message in ((self.streams.stage2.source, "MxpiTensorPackageList", crops),
                                   (CROPS_TAG_KEY, "MxpiFrameInfo", tag)):
            item = self.sdk.MxProtobufIn()
            item.key, item.type, item.protobuf = key.encode(), f"MxTools.{kind}".encode(), message.SerializeToString()
            vector.append(item)
        code = self.api.SendProtobuf(self.streams.stage2.stream.encode(), self.streams.stage2.source.encode(), vector)
        if code != 0:
            raise DeviceError("MindX SDK call failed", api="SendProtobuf", code=code)

    def _collect_crops(self) -> None:
        """Every answer of the second stream that is ready, matched to its frame by the tag it carries."""
        keys = self.sdk.StringVector()
        for key in (self.streams.stage2.infer, CROPS_TAG_KEY):
            keys.push_back(key.encode())
        stream, sink = self.streams.stage2.stream.encode(), self.streams.stage2.sink.encode()
        while any(p.plans for p in self.pending):
            answer = self.api.GetResult(stream, sink, keys, STAGE2_POLL_MS)
            if timed_out(answer):
                return
            waiting = [p for p in self.pending if p.plans]
            if answer.errorCode != 0:  # an errored buffer carries no tag: the oldest one is the one lost
                self._give_up(waiting[0], f"error {answer.errorCode}: {text(answer.errorMsg).strip()}")
                continue
            by_type = entries_by_type(answer.metadataVec)
            if "MxpiFrameInfo" not in by_type or "MxpiTensorPackageList" not in by_type:
                self._give_up(waiting[0], "an answer without the model output or its frame")
                continue
            tag = self.sdk.MxpiDataType.MxpiFrameInfo()
            tag.ParseFromString(by_type["MxpiFrameInfo"].serializedMetadata)
            key = (int(tag.channelId), int(tag.frameId))
            match = next((i for i, p in enumerate(waiting) if (p.result.info.channel_id, p.result.info.frame_id)
                          == key), None)
            if match is None:
                logger.warning("ascend device: second-stage results for channel %d frame %d, which is not waiting",
                               *key)
                continue
            for earlier in waiting[:match]:  # answers come in order: these will not come any more
                self._give_up(earlier, "a later frame's crops came back first")
            self._take_crops(waiting[match], by_type["MxpiTensorPackageList"].serializedMetadata)

    def _take_crops(self, item: "_Pending", serialized: bytes) -> None:
        packages = self.sdk.MxpiDataType.MxpiTensorPackageList()
        packages.ParseFromString(serialized)
        if len(packages.tensorPackageVec) != len(item.plans):
            self._give_up(item, f"{len(packages.tensorPackageVec)} results for {len(item.plans)} crops")
            return
        crops = []
        for plan, package in zip(item.plans, packages.tensorPackageVec):
            crops.append(CropOutput(plan.rect, plan.parent, plan.geometry,
                                    tuple(self._tensor(t) for t in package.tensorVec)))
        item.crops, item.plans = tuple(crops), []

    def _give_up(self, item: "_Pending", why: str) -> None:
        self.crops_lost += len(item.plans)
        if self.crops_lost == len(item.plans) or self.crops_lost % 1000 < len(item.plans):
            logger.warning("ascend device: camera %s frame %d goes on without its %d crops (%d lost so far): %s",
                           item.result.info.camera_id, item.result.info.frame_id, len(item.plans), self.crops_lost,
                           why)
        item.skipped += len(item.plans)
        item.plans = []

    @staticmethod
    def _tensor(tensor) -> np.ndarray:
        dtype = TENSOR_DTYPES.get(tensor.tensorDataType)
        if dtype is None:
            raise DeviceError(f"tensor data type {tensor.tensorDataType} is not handled")
        array = np.frombuffer(tensor.dataStr, dtype=dtype).reshape(tuple(tensor.tensorShape))
        if array.shape[0] != 1:
            raise DeviceError(f"expected one frame (or crop) per tensor, got a tensor of shape {array.shape}")
        return array[0].astype(np.float32)

    def _lost(self, why: str) -> None:
        self.lost += 1
        if worth_saying(self.lost):
            logger.warning("ascend device: a frame was lost (%d so far): %s", self.lost, why)

    def parse(self, metadata, with_picture: bool = False) -> Optional[FrameResult]:
        """One GetResult answer's metadataVec -> a FrameResult, by message type (entries may be omitted).
        `with_picture`: the answer was asked with the decoded picture's key (a sample due), not the resize's."""
        md = self.sdk.MxpiDataType
        by_type = entries_by_type(metadata)
        if "MxpiTensorPackageList" not in by_type or "MxpiFrameInfo" not in by_type:
            self._lost(f"no {'model output' if 'MxpiTensorPackageList' not in by_type else 'frame info'} in the "
                       f"result (an element upstream failed on this frame)")
            return None
        frame = md.MxpiFrameInfo()
        frame.ParseFromString(by_type["MxpiFrameInfo"].serializedMetadata)
        channel = int(frame.channelId)
        if not 0 <= channel < len(self.stats):
            raise DeviceError(f"a result from channel {channel}, the stream has {len(self.stats)} cameras")
        nv12 = None
        if self.picture_key is not None:
            if "MxpiVisionList" not in by_type:
                self._lost(f"camera {self.stats[channel].camera_id}: no decoded picture to crop from")
                return None
            nv12 = self._picture(channel, by_type["MxpiVisionList"].serializedMetadata)
        elif "MxpiVisionList" in by_type:
            # An entry names its message type, not its key: the keys asked for tell the picture from the resize's.
            if with_picture:
                nv12 = self._picture(channel, by_type["MxpiVisionList"].serializedMetadata)
                self.pictures_copied += 1
                with self._wanted_lock:
                    self.wanted.pop(channel, None)
            else:
                self._learn_size(channel, by_type["MxpiVisionList"].serializedMetadata)
        if channel not in self.sizes:
            self._lost(f"camera {self.stats[channel].camera_id}: its picture size is not known yet")
            return None
        tensors = md.MxpiTensorPackageList()
        tensors.ParseFromString(by_type["MxpiTensorPackageList"].serializedMetadata)
        arrays = [self._tensor(tensor) for tensor in tensors.tensorPackageVec[0].tensorVec]
        width, height, geometry = self.sizes[channel]
        # Decode time, latency, the batch and its gear: the SDK reports none of them to the host.
        info = FrameInfo(self.stats[channel].camera_id, channel, int(frame.frameId), None, time.time(), None,
                         width, height)
        return FrameResult(info, geometry, tuple(arrays), None, None, nv12=nv12)

    def _picture(self, channel: int, serialized: bytes) -> np.ndarray:
        """The decoded frame (NV12, DVPP-aligned) the host crops from; its visionInfo gives the camera size."""
        vision = self.sdk.MxpiDataType.MxpiVisionList()
        vision.ParseFromString(serialized)
        picture = vision.visionVec[0]
        info = picture.visionInfo
        width, height = int(info.width), int(info.height)
        aligned_w, aligned_h = int(info.widthAligned), int(info.heightAligned)
        data = picture.visionData.dataStr
        if len(data) < aligned_w * aligned_h * 3 // 2 or aligned_w < width or aligned_h < height:
            raise DeviceError(f"element {self.picture_key or self.sample_key}: a {width}x{height} picture (aligned "
                              f"{aligned_w}x{aligned_h}) with {len(data)} bytes is not NV12")
        if self.sizes.get(channel, (None, None))[:2] != (width, height):  # every frame: recompute on a change only
            self._set_size(channel, width, height)
        return np.frombuffer(data, np.uint8, aligned_w * aligned_h * 3 // 2).reshape(aligned_h * 3 // 2, aligned_w)

    def _learn_size(self, channel: int, serialized: bytes) -> None:
        vision = self.sdk.MxpiDataType.MxpiVisionList()
        vision.ParseFromString(serialized)
        info = vision.visionVec[0].visionInfo
        pre = info.preprocessInfo[0] if len(info.preprocessInfo) else None
        if pre is None:
            raise DeviceError(f"element {self.streams.resize}: its picture carries no preprocessInfo (source size)")
        self._set_size(channel, int(pre.widthSrc), int(pre.heightSrc))

    def _set_size(self, channel: int, width: int, height: int) -> None:
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
        self._destroy_api()

    def _destroy_api(self) -> None:
        api, self.api = self.api, None
        if api is not None:
            code = api.DestroyAllStreams()
            if code != 0:
                logger.error("DestroyAllStreams returned %d", code)

    def camera_stats(self) -> List[CameraStats]:
        return list(self.stats)

    def lost_frames(self) -> int:
        return self.lost


@dataclasses.dataclass
class _Pending:
    """A frame on its way to the host: `plans` are its crops still out at the second stage."""

    result: FrameResult
    plans: list
    skipped: int
    sent: float
    crops: tuple = ()
