"""A double of the MindX SDK's Python API (StreamManagerApi, MxpiDataType_pb2), built from the SDK's source
(Ascend/VisionSDK, commit f156edc) and its reference (../shared/reference/visionsdk/api_Python.md). Each
behaviour names the file it follows; what the source does, the double does, including what blocks, what is
omitted and what is refused:

- The binding's types decide every answer (StreamManagerApi.i: SWIG_PYTHON_STRICT_BYTE_CHAR over
  StreamManagerApi.h). Each struct and vector the header declares is a class here with exactly its fields and
  their C++ types: a std::string is bytes both ways (dataType, errorMsg, serializedMetadata, messageName, key,
  type, protobuf), a str is a TypeError, an unknown attribute an AttributeError, and every method checks its
  arguments as SWIG's overload dispatcher does ("Wrong number or type of arguments for overloaded function").
- InitManager refuses what the SDK refuses before any stream exists: MX_SDK_HOME unset; libmxbase.so, the
  GStreamer plugins and the plugin scanner not owned by the process's (real) user or with looser modes than
  the SDK allows (DeviceManager.cpp UserPermissionCheck, MxStreamManagerDptr.cpp HandleSDKEnv, FileUtils.cpp
  ConstrainOwner/ConstrainPermission; `make_sdk_home` lays out an install that passes). It starts the stream
  manager's management threads (MxStreamManager.cpp CreateManagementThreads), which only DestroyAllStreams
  ends: a device that initialised the SDK and failed must still destroy it, or the process does not exit.
- CreateMultipleStreams takes bytes, once per process (api_Python.md "CreateMultipleStreams": do not call it
  and DestroyAllStreams repeatedly in one process); it refuses a graph whose plugins' properties the plugins
  would refuse (their ranges: pipeline/sdk.py, derived from plugins.md and each plugin's DefineProperties)
  with APP_ERR_COMM_INIT_FAIL. The SDK itself calls InitManager when it was not called (MxStreamManager.cpp
  CreateMultipleStreams: `if (!dPtr_->isInitialized_) InitManager()`); the double is stricter and asserts the
  explicit InitManager-then-create order the device follows (api_Python.md "InitManager", the samples).
- mxpi_videodecoder decodes one codec per element. On the mxVision releases of 310 boxes it is set up from
  `inputVideoFormat` (default H264), which must match the stream (plugins.md "mxpi_videodecoder"); the 7.3 SDK
  takes the first frame's format from mxpi_rtspsrc and keeps it (MxpiVideoDecoder.cpp Process: SetDvppVideoFormat
  once, `isInitVdec_`; `takes_upstream_format=True`). A frame of another codec never reaches mxpi_tensorinfer:
  a picture the VDEC returns with a non-zero retCode is released with only a warning ("channelId:N frameId:M
  decode failed"), no buffer and no error go downstream (mxBase DvppWrapperBase.cpp Callback). The double
  records it in `decoder_errors`, and the host hears nothing (`push_camera_frame`).
- GetResult on a stream that does not exist (never created, or destroyed) answers APP_ERR_STREAM_NOT_EXIST
  (MxStreamManager.cpp GetResult: IsStreamExist).
- mxpi_tensorinfer fills every batch to the model's LARGEST gear and otherwise waits `waitingTime` ms
  (MxpiTensorInfer.cpp: maxBatchSize_ = modelDesc_.batchSizes.back(); Process runs DataProcess only when
  dataQueue_.size() >= maxBatchSize_; the waiting thread runs the rest after timeTravel_). Each frame leaves as
  its own buffer with batch dimension 1 (outputHasBatchDim defaults to 1).
- GetResult(stream, element, keys, timeout_ms) waits at most timeout_ms and answers APP_ERR_COMM_FAILURE (1001) "Get
  empty result, or exceed the time limit" when nothing came (MxsmStream.cpp GetResult); `element` must be an appsink
  (APP_ERR_STREAM_ELEMENT_INVALID, "ElementName(x) is not a name of output element", otherwise: MxsmStream.cpp
  CheckRequirementsForGetResult); a key the buffer does not carry is OMITTED from metadataVec (StreamManagerApi.cpp
  GetResult skips entries whose dataPtr is null), and an entry carries the message TYPE in dataType, never the key; a
  buffer that carries an upstream error answers its error code and message instead (MxsmStream.cpp
  GenerateMetaAndBufferOutput). Asking for an MxpiVisionList copies its picture to the host (PyDataHelper.cpp
  ParseVisionList): the double counts those bytes (`picture_bytes_copied`). GetResult must not run from two threads at
  once (api_Python.md "GetResult": 输出结果不支持多线程并发). The answer's fields (errorCode, errorMsg, metadataVec, bufferOutput)
  are MxBufferAndMetadataOutput's in StreamManagerApi.h. A timeout and an errored buffer both answer 1001 when the
  plugin's error was 1001; only the message tells them apart ("Get empty result, or exceed the time limit(N)." for the
  timeout). Only the keyed form is modelled: GetResult(stream, outPluginId, timeout), which answers an MxDataOutput
  without metadata, fails the test loudly instead (a limit of the double, not of the SDK).
- The frame info travels as metadata under the key "ReservedFrameInfo" (MxpiBufferManager.cpp FRAME_INFO_KEY,
  AddFrameInfoToMetadata), in the same protobuf map GetResult's keys are looked up in
  (MxpiMetadataManager.cpp AddProtoMetadata -> mxpiProtobufMap), so GetResult returns it like any key.
- GetProtobuf blocks with NO timeout until a result comes (api_Python.md "GetProtobuf": 阻塞队列，若无数据则阻塞),
  omits keys it did not find and sets messageName to the KEY (MxsmStream.cpp GetProtobuf).
- SendProtobuf(stream, appsrc, InProtobufVector of MxProtobufIn(key, type, protobuf)) puts ONE buffer into the
  appsrc carrying every protobuf of the vector under its key (MxsmStream.cpp SendProtobufComm); `type` must be
  the message's full name, e.g. b"MxTools.MxpiTensorPackageList", or the call answers APP_ERR_COMM_FAILURE
  (PyDataHelper.cpp GetProtobufPtr: FindMessageTypeByName); an unknown stream answers APP_ERR_STREAM_NOT_EXIST
  (MxStreamManager.cpp SendProtobuf), an element that is not one of its appsrcs APP_ERR_STREAM_INVALID_LINK
  (MxsmStream.cpp SendProtobuf). Tensors travel in `dataStr` with memType 0 (host), copied in by the SDK
  (PyDataHelper.cpp ReBuildTensorPackageList).
- an mxpi_tensorinfer fed from an appsrc takes every tensor package of a buffer as one item of its batch queue
  (MxpiTensorInfer.cpp DataPreparation / ConstructBuffersInfo), fills batches to the model's largest gear or
  runs after waitingTime as above, and checks each package (CheckInputTensors): one tensor (the model's
  inputs less the dynamic-batch one), a shape other than the model's V1 dims [n, h, w, c] only logged as a
  warning (`warnings`; mxpi_tensorinfer describes the model with aclmdlGetInputDims), the bytes equal to the
  input size at the largest gear divided by that gear (CheckTensorDatasize) or every buffer the plugin holds
  answers an error; each buffer goes on with one output package per input package, each tensor with batch
  dimension 1, the buffer's other keys untouched.
  What the model computes is the test's (`StreamManagerApi.models[modelPath]`: uint8 batch -> outputs); when
  it raises RuntimeError (a failed aclmdlExecute), every buffer the plugin holds answers an error
  (ClearResourcesAndSendErrorInfo).
The wire encoding of the messages is JSON, not protobuf (the SDK's MxpiDataType_pb2 cannot be installed here):
the code under test only uses ParseFromString and the fields, whose names follow MxpiDataType.proto.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import queue
import threading
import time
import types

import numpy as np

from pipeline.sdk import check_properties

APP_ERR_COMM_FAILURE = 1001  # ErrorCodes.h: APP_ERR_COMM_BASE (1000) + 1
APP_ERR_COMM_INVALID_PARAM = 1004  # APP_ERR_COMM_BASE + 4
APP_ERR_COMM_INIT_FAIL = 1013  # APP_ERR_COMM_BASE + 13
APP_ERR_COMM_NO_EXIST = 1016  # APP_ERR_COMM_BASE + 16
APP_ERR_STREAM_NOT_EXIST = 6002  # APP_ERR_STREAM_BASE (6000) + 2
APP_ERR_STREAM_ELEMENT_INVALID = 6011  # APP_ERR_STREAM_BASE + 11
APP_ERR_STREAM_INVALID_LINK = 6006  # APP_ERR_STREAM_BASE + 6
APP_PYTHON_INIT_ERROR = -1  # ErrorCodes.h: the Python API before InitManager
APP_ERR_ACL_FAILURE = -1  # ErrorCodes.h: "ACL: general error"


# --- the SWIG binding's types ---------------------------------------------------------------------------------
# StreamManagerApi.i wraps StreamManagerApi.h with SWIG_PYTHON_STRICT_BYTE_CHAR: every std::string crosses the
# binding as bytes, in both directions. A str argument or field value is a TypeError; every string the SDK hands
# back (a field of a returned struct, an item of a StringVector) is bytes. The structs and vectors below are
# transcribed from StreamManagerApi.h and the %template lines of StreamManagerApi.i; the double builds every
# answer from them, so an answer cannot carry a str.
UINT = "unsigned int"  # `const unsigned int &`: an int in 0..2**32-1


def _conforms(value, kind) -> bool:
    if kind is bytes:
        return isinstance(value, bytes)
    if kind is int:
        return isinstance(value, int)
    if kind == UINT:
        return isinstance(value, int) and 0 <= value < 2 ** 32
    if isinstance(kind, type) and issubclass(kind, _Vector):
        # SWIG's std_vector typemaps take the wrapped vector or any sequence of conforming items.
        return isinstance(value, (kind, list, tuple)) and all(_conforms(v, kind.ITEM) for v in value)
    return isinstance(value, kind)


def _cpp(kind) -> str:
    return {bytes: "std::string const &", int: "int const &"}.get(kind, str(getattr(kind, "__name__", kind)))


class _Struct:
    """A SWIG proxy of a C++ struct: only the declared fields, each of its C++ type (StreamManagerApi.h)."""

    FIELDS: dict = {}

    def __init__(self, **values):
        for name, kind in self.FIELDS.items():
            object.__setattr__(self, name, kind())
        for name, value in values.items():
            setattr(self, name, value)

    def __setattr__(self, name, value):
        kind = self.FIELDS.get(name)
        if kind is None:  # SWIG 4 proxies: _swig_setattr_nondynamic_instance_variable
            raise AttributeError(f"You cannot add instance attributes to {type(self).__name__} ({name!r})")
        if not _conforms(value, kind):
            raise TypeError(f"in method '{type(self).__name__}_{name}_set', argument 2 of type '{_cpp(kind)}'")
        object.__setattr__(self, name, value)


class _Vector(list):
    """A %template'd std::vector: push_back/append of the item type only, size(), iteration."""

    ITEM: type = object

    def __init__(self, items=()):
        super().__init__()
        for item in items:
            self.push_back(item)

    def push_back(self, value) -> None:
        if not _conforms(value, self.ITEM):
            raise TypeError(f"in method '{type(self).__name__}_push_back', argument 2 of type "
                            f"'std::vector< {getattr(self.ITEM, '__name__', self.ITEM)} >::value_type const &'")
        list.append(self, value)

    append = push_back

    def size(self) -> int:
        return len(self)


class StringVector(_Vector):
    ITEM = bytes


class MxProtobufIn(_Struct):
    FIELDS = {"key": bytes, "type": bytes, "protobuf": bytes}


class MxProtobufOut(_Struct):
    FIELDS = {"errorCode": int, "messageName": bytes, "messageBuf": bytes}


class MxMetadataOutput(_Struct):
    FIELDS = {"errorCode": int, "errorMsg": bytes, "dataType": bytes, "serializedMetadata": bytes}


class MxDataOutput(_Struct):
    FIELDS = {"errorCode": int, "data": bytes}


class MxBufferOutput(_Struct):
    FIELDS = {"errorCode": int, "errorMsg": bytes, "data": bytes}


class InProtobufVector(_Vector):
    ITEM = MxProtobufIn


class OutProtobufVector(_Vector):
    ITEM = MxProtobufOut


class MetadataOutputVector(_Vector):
    ITEM = MxMetadataOutput


class MxBufferAndMetadataOutput(_Struct):
    FIELDS = {"errorCode": int, "errorMsg": bytes, "bufferOutput": MxBufferOutput,
              "metadataVec": MetadataOutputVector}


def _overload(method: str, args: tuple, *signatures) -> int:
    """Which declaration of an overloaded method the arguments select, as SWIG's dispatcher decides: the first
    whose arity (defaults counted) and argument types fit; none is a TypeError."""
    for index, (types_, required) in enumerate(signatures):
        if required <= len(args) <= len(types_) and all(_conforms(a, t) for a, t in zip(args, types_)):
            return index
    raise TypeError(f"Wrong number or type of arguments for overloaded function 'StreamManagerApi_{method}'")


# --- MxpiDataType_pb2 -----------------------------------------------------------------------------------------
class _Message:
    """A protobuf message: declared fields of their types (MxpiDataType.proto), ParseFromString takes bytes."""

    FIELDS: dict = {}

    def __setattr__(self, name, value):
        kind = self.FIELDS.get(name)
        if kind is not None and not isinstance(value, kind):
            raise TypeError(f"{value!r} has type {type(value).__name__}, but expected one of: "
                            f"{kind.__name__} (field {type(self).__name__}.{name})")
        object.__setattr__(self, name, value)

    def ParseFromString(self, data: bytes) -> None:  # noqa: N802 (protobuf API)
        if not isinstance(data, (bytes, memoryview)):
            raise TypeError(f"ParseFromString takes bytes, not {type(data).__name__}")
        self._load(json.loads(bytes(data).decode()))

    def _load(self, data: dict) -> None:
        for key, value in data.items():
            setattr(self, key, value)


class _Repeated(list):
    """A repeated message field: `add()` appends a new message (protobuf's RepeatedCompositeFieldContainer)."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def add(self):
        self.append(self.kind())
        return self[-1]


class MxpiTensor(_Message):
    FIELDS = {"tensorDataType": int, "memType": int, "deviceId": int, "tensorDataSize": int, "dataStr": bytes}

    def __init__(self):
        self.tensorShape, self.tensorDataType, self.dataStr = [], 0, b""
        self.memType, self.deviceId, self.tensorDataSize = 0, 0, 0

    def _load(self, data):
        self.tensorShape = list(data["tensorShape"])
        self.tensorDataType = data["tensorDataType"]
        self.dataStr = base64.b64decode(data["dataStr"])
        self.memType = data.get("memType", 0)

    def _dump(self) -> dict:
        return {"tensorShape": [int(d) for d in self.tensorShape], "tensorDataType": self.tensorDataType,
                "dataStr": base64.b64encode(bytes(self.dataStr)).decode(), "memType": self.memType,
                "tensorDataSize": self.tensorDataSize}


class MxpiTensorPackage(_Message):
    def __init__(self):
        self.tensorVec = _Repeated(MxpiTensor)

    def _load(self, data):
        self.tensorVec = _Repeated(MxpiTensor)
        for item in data["tensorVec"]:
            self.tensorVec.add()._load(item)


class MxpiTensorPackageList(_Message):
    def __init__(self):
        self.tensorPackageVec = _Repeated(MxpiTensorPackage)

    def _load(self, data):
        self.tensorPackageVec = _Repeated(MxpiTensorPackage)
        for item in data["tensorPackageVec"]:
            self.tensorPackageVec.add()._load(item)

    def SerializeToString(self) -> bytes:  # noqa: N802
        return json.dumps({"tensorPackageVec": [{"tensorVec": [t._dump() for t in p.tensorVec]}
                                                for p in self.tensorPackageVec]}).encode()


class MxpiFrameInfo(_Message):
    """channelId, frameId, isEos (MxpiDataType.proto): no picture size, no time stamp."""

    FIELDS = {"channelId": int, "frameId": int, "isEos": bool}

    def __init__(self):
        self.channelId, self.frameId, self.isEos = 0, 0, False

    def SerializeToString(self) -> bytes:  # noqa: N802
        return json.dumps({"channelId": self.channelId, "frameId": self.frameId, "isEos": self.isEos}).encode()


class MxpiVisionList(_Message):
    def _load(self, data):
        self.visionVec = []
        for v in data["visionVec"]:
            info = dict(v["visionInfo"])
            info["preprocessInfo"] = [types.SimpleNamespace(**p) for p in info.get("preprocessInfo", [])]
            vision_data = types.SimpleNamespace(dataStr=base64.b64decode(v["visionData"]["dataStr"])) \
                if "visionData" in v else None
            self.visionVec.append(types.SimpleNamespace(visionInfo=types.SimpleNamespace(**info),
                                                        visionData=vision_data))


MxpiDataType = types.SimpleNamespace(MxpiTensorPackageList=MxpiTensorPackageList, MxpiFrameInfo=MxpiFrameInfo,
                                     MxpiVisionList=MxpiVisionList)
MESSAGE_TYPES = {"MxTools.MxpiTensorPackageList": "MxpiTensorPackageList", "MxTools.MxpiFrameInfo": "MxpiFrameInfo",
                 "MxTools.MxpiVisionList": "MxpiVisionList"}


# --- the SDK's own checks at InitManager ----------------------------------------------------------------------
def _owner_and_mode_problem(path: pathlib.Path, max_mode: int) -> str | None:
    """FileUtils.cpp ConstrainOwner (owner == getuid(), the REAL uid) and ConstrainPermission (each of owner,
    group and other at most max_mode's digit)."""
    try:
        info = path.stat()
    except OSError:
        return f"{path}: Get file stat failed."
    if info.st_uid != os.getuid():
        return (f"{path}: Owner id diff: current process user id is {os.getuid()}, file owner id is "
                f"{info.st_uid}")
    mode = info.st_mode & 0o777
    for shift in (6, 3, 0):
        if (mode >> shift) & 7 > (max_mode >> shift) & 7:
            return f"{path}: permission {mode:o} is higher than {max_mode:o}"
    return None


def sdk_environment_problem() -> tuple[int, str] | None:
    """What InitManager refuses before it starts anything (MxStreamManager.cpp InitManager ->
    MxStreamManagerDptr.cpp HandleSDKEnv): MX_SDK_HOME unset (APP_ERR_COMM_INVALID_PARAM); the GStreamer plugin
    scanner missing, not the process user's or above 0550 (CheckPluginScannerPath); a file under GST_PLUGIN_PATH
    not the user's or above 0640 (CheckPluginDirectory -> IsFileValid)."""
    home = os.environ.get("MX_SDK_HOME")
    if not home:
        return APP_ERR_COMM_INVALID_PARAM, 'The environment variable "MX_SDK_HOME" is not set.'
    home = home.rstrip("/")
    scanner = pathlib.Path(os.environ.get("GST_PLUGIN_SCANNER",
                                          f"{home}/opensource/libexec/gstreamer-1.0/gst-plugin-scanner"))
    if not scanner.is_file():
        return APP_ERR_COMM_NO_EXIST, f"GST_PLUGIN_SCANNER is not exist: {scanner}"
    problem = _owner_and_mode_problem(scanner, 0o550)
    if problem:
        return APP_ERR_COMM_FAILURE, f"Check GST_PLUGIN_SCANNER failed: {problem}"
    paths = f"{home}/opensource/lib/gstreamer-1.0:{home}/lib/plugins"
    for directory in (paths + (":" + os.environ["GST_PLUGIN_PATH"] if "GST_PLUGIN_PATH" in os.environ else "")
                      ).split(":"):
        folder = pathlib.Path(directory)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
            problem = _owner_and_mode_problem(path, 0o640)
            if problem:
                return APP_ERR_COMM_FAILURE, f"File in GST_PLUGIN_PATH is invalid: {problem}"
    return None


def user_permission_problem() -> tuple[int, str] | None:
    """DeviceManager::InitDevices, which InitManager calls AFTER it created the management threads:
    libmxbase.so not the process user's or above 0640 (DeviceManager.cpp UserPermissionCheck)."""
    library = pathlib.Path(os.environ["MX_SDK_HOME"].rstrip("/"), "lib", "libmxbase.so")
    problem = _owner_and_mode_problem(library, 0o640)
    if problem:
        return APP_ERR_COMM_FAILURE, f"Check user permission failed, please check the owner of process. {problem}"
    return None


def make_sdk_home(root: pathlib.Path) -> pathlib.Path:
    """An mxVision install as its installer leaves it, owned by this process's user: libmxbase.so, one plugin,
    the plugin scanner (modes as the SDK requires). Point MX_SDK_HOME at it."""
    for relative, mode in (("lib/libmxbase.so", 0o440), ("lib/plugins/libmxpi_tensorinfer.so", 0o440),
                           ("opensource/libexec/gstreamer-1.0/gst-plugin-scanner", 0o550)):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF stand-in")
        os.chmod(path, mode)
    return root


# --- StreamManagerApi -----------------------------------------------------------------------------------------
def _timeout_message(timeout_ms: int) -> bytes:
    # MxsmStream.cpp GetResult: GetErrorInfo(APP_ERR_COMM_FAILURE) + "Get empty result, or exceed the time limit"
    return (f' (Code = {APP_ERR_COMM_FAILURE}, Message = "General Failed") Get empty result, or exceed the time '
            f"limit({timeout_ms}).").encode()


class _ModelDesc:
    """What ModelInferenceProcessor tells mxpi_tensorinfer about an AIPP OM with dynamic batch
    (ModelInferenceProcessorDptr.hpp GetInputTensorsSize): the input dims from aclmdlGetInputDims (V1: n, h, w,
    c of the picture, n = -1 for dynamic batch; CANN aclmdlGetInputDims, static AIPP table: YUV420SP_U8 -> NHWC
    n,h,w,c), the input's bytes at the largest gear from aclmdlGetInputSizeByIndex (h*w*1.5 per picture), and
    one tensor the host feeds (the dynamic-batch input is not counted: MxpiTensorInfer.cpp
    CheckInputTensors)."""

    def __init__(self, model_path: str):
        manifest = json.loads((pathlib.Path(model_path).parent / "manifest.json").read_text())
        self.max_batch = int(manifest["batch_gears"][-1])  # MxpiTensorInfer: batchSizes.back()
        self.height, self.width = int(manifest["input_height"]), int(manifest["input_width"])
        self.input_dims = [-1, self.height, self.width, 3]
        self.input_size = self.max_batch * self.height * self.width * 3 // 2


class _AppStream:
    """A stream the host feeds: appsrc(s) -> mxpi_tensorinfer -> appsink (the second stage's)."""

    def __init__(self, name: str, elements: dict):
        self.name = name
        self.appsrcs = [n for n, e in elements.items() if e.get("factory") == "appsrc"]
        self.appsinks = [n for n, e in elements.items() if e.get("factory") == "appsink"]
        self.infer_name, infer = next((n, e) for n, e in elements.items() if e.get("factory") == "mxpi_tensorinfer")
        props = infer.get("props", {})
        self.model_path = props["modelPath"]
        self.data_source = props.get("dataSource", self.appsrcs[0])
        self.model = _ModelDesc(self.model_path)
        self.waiting_s = int(props.get("waitingTime", "5000")) / 1000.0
        self.results: "queue.Queue" = queue.Queue()
        self.items: list = []  # (buffer, package index), waiting for a batch
        self.first = 0.0

    def refuse_all(self, code: int, message: str) -> None:
        """MxpiTensorInfer.cpp ClearResourcesAndSendErrorInfo: every buffer the plugin holds answers the error."""
        held = []
        for buffer, _ in self.items:
            if all(buffer is not b for b in held):
                held.append(buffer)
        self.items = []
        for _ in held:
            self.results.put(("error", code, message))


class StreamManagerApi:
    """`codes` forces return codes per API; `instances` lets a test reach the instance the device made."""

    instances: list = []
    models: dict = {}  # modelPath -> what the model computes, for a host-fed stream (uint8 batch -> outputs)

    def __init__(self, codes: dict | None = None, takes_upstream_format: bool = False):
        self.codes = dict(codes or {})
        self.takes_upstream_format = takes_upstream_format
        self.decoder_formats: dict = {}  # decoder -> the format its VDEC was set up for
        self.decoder_errors: list = []  # (decoder, what it is set up for, what came)
        self.calls: list = []
        self.graph: dict | None = None
        self.results: "queue.Queue" = queue.Queue()  # buffers at the appsink
        self.destroyed = False
        self.picture_bytes_copied = 0
        self.init_error: str | None = None
        self.warnings: list = []  # what the plugins log as warnings and go on (a tensor shape they do not expect)
        self._pending: list = []  # frames waiting in mxpi_tensorinfer for a full batch
        self._first_pending = 0.0
        self._getting = threading.Lock()
        self._batch_lock = threading.Lock()
        self._batcher = None
        self._management: threading.Thread | None = None
        self._management_stop = threading.Event()
        self.app_streams: dict = {}  # name -> _AppStream
        self.sent: list = []  # (stream, element, {key: (type, message dict)}) of every SendProtobuf
        StreamManagerApi.instances.append(self)

    def InitManager(self, *args) -> int:  # noqa: N802
        _overload("InitManager", args, ((StringVector,), 0))
        self.calls.append("InitManager")
        if self.codes.get("InitManager"):
            return self.codes["InitManager"]
        refused = sdk_environment_problem()
        if refused is None:
            # MxStreamManager.cpp InitManager -> CreateManagementThreads: native threads that live until
            # DestroyAllStreams (DestroyManagementThreads), started BEFORE the user check below. Not daemon
            # threads: a process that initialised the SDK and never destroyed it does not exit.
            if self._management is None:
                self._management = threading.Thread(target=self._management_stop.wait, name="mxsm-management")
                self._management.start()
            refused = user_permission_problem()
        if refused is not None:
            self.init_error = refused[1]
            return refused[0]
        return 0

    def management_threads_alive(self) -> bool:
        return self._management is not None and self._management.is_alive()

    def CreateMultipleStreams(self, *args) -> int:  # noqa: N802
        _overload("CreateMultipleStreams", args, ((bytes,), 1))
        graph = args[0]
        if "InitManager" not in self.calls:
            raise AssertionError("CreateMultipleStreams before InitManager")
        if "CreateMultipleStreams" in self.calls:
            raise AssertionError("CreateMultipleStreams twice in one process (api_Python.md forbids it)")
        self.calls.append("CreateMultipleStreams")
        if self.codes.get("CreateMultipleStreams"):
            return self.codes["CreateMultipleStreams"]
        self.graph = json.loads(graph)
        self.refused = [p for stream in self.graph.values() for name, element in stream.items()
                        if name != "stream_config" for p in check_properties(name, element["factory"],
                                                                              element.get("props", {}))]
        if self.refused:
            return APP_ERR_COMM_INIT_FAIL
        self.stream_name, stream = next(iter(self.graph.items()))
        for name, other in list(self.graph.items())[1:]:
            self.app_streams[name] = _AppStream(name, {n: e for n, e in other.items() if n != "stream_config"})
        self.appsinks = [n for n, e in stream.items() if n != "stream_config" and e.get("factory") == "appsink"]
        infer = next((e for e in stream.values() if isinstance(e, dict) and e.get("factory") == "mxpi_tensorinfer"),
                     None)
        self.max_batch, self.waiting_s = 1, 0.0
        if infer is not None:
            props = infer.get("props", {})
            self.max_batch = _ModelDesc(props["modelPath"]).max_batch
            self.waiting_s = int(props.get("waitingTime", "5000")) / 1000.0
        self._batcher = threading.Thread(target=self._batch_loop, daemon=True)  # every stream's tensorinfer
        self._batcher.start()
        return 0

    # What the stream produces, driven by the test: one decoded frame reaching mxpi_tensorinfer.
    def push_frame(self, metadata: dict) -> None:
        """`metadata`: key -> (type name, message dict) the frame's buffer carries when it reaches the appsink."""
        with self._batch_lock:
            if not self._pending:
                self._first_pending = time.monotonic()
            self._pending.append(metadata)

    def push_camera_frame(self, metadata: dict, codec: str) -> bool:
        """One encoded frame of `codec` ("H264"/"H265") from the camera of the frame's channel, through its
        decoder; True when decoded (then it goes on as `push_frame`)."""
        channel = str(metadata["ReservedFrameInfo"][1]["channelId"])
        stream = self.graph[self.stream_name]
        source = next(e for n, e in stream.items() if n != "stream_config" and e.get("factory") == "mxpi_rtspsrc"
                      and e.get("props", {}).get("channelId") == channel)
        decoder = source["next"]
        if decoder not in self.decoder_formats:  # MxpiVideoDecoder.cpp: the VDEC is set up at the first frame
            configured = stream[decoder].get("props", {}).get("inputVideoFormat", "H264")
            self.decoder_formats[decoder] = codec if self.takes_upstream_format else configured
        if codec != self.decoder_formats[decoder]:  # DvppWrapperBase.cpp Callback: retCode != 0, dropped
            self.decoder_errors.append((decoder, self.decoder_formats[decoder], codec))
            return False
        self.push_frame(metadata)
        return True

    def push_error(self, code: int, message: str) -> None:
        """A buffer that carries an upstream plugin's error to the appsink (MxsmStream.cpp
        SetErrorInfoToDataOutput: each error's text followed by a newline)."""
        self.results.put(("error", code, message + "\n"))

    def _batch_loop(self) -> None:
        while not self.destroyed:
            with self._batch_lock:
                full = len(self._pending) >= self.max_batch
                waited = self._pending and time.monotonic() - self._first_pending >= self.waiting_s
                if full or waited:
                    batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                    self._first_pending = time.monotonic()
                else:
                    batch = []
                for app in self.app_streams.values():
                    self._run_app_stream(app)
            for frame in batch:
                self.results.put(("frame", frame))
            time.sleep(0.002)

    def SendProtobuf(self, *args) -> int:  # noqa: N802
        which = _overload("SendProtobuf", args, ((bytes, int, InProtobufVector), 3),
                          ((bytes, bytes, InProtobufVector), 3))
        stream_name, element, vector = args
        if "InitManager" not in self.calls:
            return APP_PYTHON_INIT_ERROR
        metadata = {}
        for item in vector:
            kind = MESSAGE_TYPES.get(item.type.decode())
            if kind is None:
                return APP_ERR_COMM_FAILURE  # "MxpiDataTransfer error: Cannot get descriptor."
            metadata[item.key.decode()] = (kind, json.loads(item.protobuf))
        app = self.app_streams.get(stream_name.decode())
        if app is None or self.destroyed:
            return APP_ERR_STREAM_NOT_EXIST
        name = element.decode() if which == 1 else (app.appsrcs[element] if 0 <= element < len(app.appsrcs)
                                                     else None)
        if name not in app.appsrcs:
            return APP_ERR_STREAM_INVALID_LINK
        self.sent.append((app.name, name, metadata))
        with self._batch_lock:
            self._tensorinfer_takes(app, metadata)
        return 0

    def _tensorinfer_takes(self, app: "_AppStream", metadata: dict) -> None:
        """MxpiTensorInfer.cpp Process -> DataPreparation: the buffer joins the plugin's queue first; each of its
        packages is checked (CheckInputTensors): the tensor count must be the model's (else an error), a shape
        the model does not describe is only a warning (CheckTensorShape answers APP_ERR_COMM_FAILURE, which
        CheckInputTensors logs and goes on from), the bytes must be the model input's bytes at the largest gear
        divided by that gear (CheckTensorDatasize; tensorDataSize is len(dataStr): PyDataHelper.cpp
        ReBuildTensorPackageList). A refused buffer answers an error for every buffer the plugin holds, itself
        included (ClearResourcesAndSendErrorInfo)."""
        found = metadata.get(app.data_source)
        buffer = {"metadata": metadata, "count": 0, "outputs": []}
        if not app.items:
            app.first = time.monotonic()
        app.items.append((buffer, None))  # held, as buffersQueue_
        if found is None or found[0] != "MxpiTensorPackageList" or not found[1]["tensorPackageVec"]:
            app.refuse_all(APP_ERR_COMM_FAILURE, f"Invalid MxpiTensorPackageList is provided from input port("
                                                 f"{app.data_source}).")
            return
        model = app.model
        for package in found[1]["tensorPackageVec"]:
            if len(package["tensorVec"]) != 1:
                app.refuse_all(APP_ERR_COMM_FAILURE, "The shape of concated inputTensors does not match model "
                                                     "inputTensors.")
                return
            tensor = package["tensorVec"][0]
            shape = tensor["tensorShape"]
            if len(shape) != len(model.input_dims) or any(
                    d != -1 and shape[k] != -1 and d != shape[k] for k, d in enumerate(model.input_dims[1:-1], 1)):
                self.warnings.append(f"The shape of concat inputTensors[0] does not match model inputTensors[0]: "
                                     f"{shape} against {model.input_dims}")
            size = len(base64.b64decode(tensor["dataStr"]))
            if size != model.input_size // model.max_batch:
                app.refuse_all(APP_ERR_COMM_FAILURE, f"The datasize of concated inputTensors[0]({size}) does not "
                                                     f"match model inputTensors[0]"
                                                     f"({model.input_size // model.max_batch}).")
                return
        app.items.pop()
        buffer["count"] = len(found[1]["tensorPackageVec"])
        app.items += [(buffer, i) for i in range(buffer["count"])]

    def _run_app_stream(self, app: "_AppStream") -> None:
        """Batches of packages, as MxpiTensorInfer does; a buffer goes on once all its packages ran."""
        model = app.model
        while app.items and (len(app.items) >= model.max_batch or time.monotonic() - app.first >= app.waiting_s):
            batch, app.items = app.items[:model.max_batch], app.items[model.max_batch:]
            app.first = time.monotonic()
            arrays = [np.frombuffer(base64.b64decode(buffer["metadata"][app.data_source][1]["tensorPackageVec"][i]
                                                     ["tensorVec"][0]["dataStr"]), np.uint8)
                      for buffer, i in batch]
            try:
                outputs = StreamManagerApi.models[app.model_path](
                    np.stack([a.reshape(model.height * 3 // 2, model.width, 1) for a in arrays]))
            except RuntimeError:
                # A failed inference answers an error for EVERY buffer the plugin holds, not only this batch's
                # (MxpiTensorInfer.cpp ClearResourcesAndSendErrorInfo; aclmdlExecute -> APP_ERR_ACL_FAILURE).
                app.items = batch + app.items
                app.refuse_all(APP_ERR_ACL_FAILURE, "Model inference is failed.")
                continue
            for j, (buffer, i) in enumerate(batch):
                buffer["outputs"].append((i, [o[j:j + 1] for o in outputs]))
                if len(buffer["outputs"]) == buffer["count"]:
                    packages = [{"tensorVec": [{"tensorShape": list(o.shape), "tensorDataType": 0,
                                                "dataStr": base64.b64encode(o.astype(np.float32).tobytes()).decode()}
                                               for o in outs]} for _, outs in sorted(buffer["outputs"],
                                                                                     key=lambda x: x[0])]
                    out = dict(buffer["metadata"])
                    out[app.infer_name] = ("MxpiTensorPackageList", {"tensorPackageVec": packages})
                    app.results.put(("frame", out))

    def GetResult(self, *args):  # noqa: N802
        which = _overload("GetResult", args, ((bytes, int, UINT), 2), ((bytes, bytes, StringVector, UINT), 3))
        if which == 0:
            raise AssertionError("GetResult(stream, outPluginId, timeout) answers an MxDataOutput without "
                                 "metadata; this double covers the keyed form")
        stream_name, element, keys = args[:3]
        timeout_ms = args[3] if len(args) > 3 else 3000
        if not self._getting.acquire(blocking=False):
            raise AssertionError("GetResult called from two threads at once (not supported by the SDK)")
        try:
            return self._get_result(stream_name.decode(), element.decode(), keys, timeout_ms)
        finally:
            self._getting.release()

    def _get_result(self, stream_name: str, element: str, keys, timeout_ms: int) -> MxBufferAndMetadataOutput:
        app = self.app_streams.get(stream_name)
        if "InitManager" not in self.calls:  # StreamManagerApi.cpp GetResult: no manager yet
            return MxBufferAndMetadataOutput(errorCode=APP_ERR_STREAM_NOT_EXIST, errorMsg=b"The initialization is "
                                             b"not performed, Call the InitManager method first.")
        if self.graph is None or self.destroyed or (stream_name != self.stream_name and app is None):
            return MxBufferAndMetadataOutput(errorCode=APP_ERR_STREAM_NOT_EXIST, errorMsg=b"Stream not exist.")
        if element not in (app.appsinks if app else self.appsinks):
            return MxBufferAndMetadataOutput(errorCode=APP_ERR_STREAM_ELEMENT_INVALID,
                                             errorMsg=f"ElementName({element}) is not a name of output "
                                                      f"element.".encode())
        try:
            item = (app.results if app else self.results).get(timeout=timeout_ms / 1000.0)
        except queue.Empty:
            return MxBufferAndMetadataOutput(errorCode=APP_ERR_COMM_FAILURE, errorMsg=_timeout_message(timeout_ms))
        if item[0] == "error":  # MxsmStream.cpp GenerateMetaAndBufferOutput: the buffer's error, its message
            return MxBufferAndMetadataOutput(errorCode=item[1], errorMsg=item[2].encode())
        answer = MxBufferAndMetadataOutput()
        for key in keys:
            found = item[1].get(key.decode())
            if found is None:
                continue  # omitted, not reported (StreamManagerApi.cpp)
            kind, message = found
            if kind == "MxpiVisionList":
                self.picture_bytes_copied += sum(v["visionInfo"]["widthAligned"] * v["visionInfo"]["heightAligned"]
                                                 * 3 // 2 for v in message["visionVec"])
            answer.metadataVec.push_back(MxMetadataOutput(dataType=kind.encode(),
                                                          serializedMetadata=json.dumps(message).encode()))
        return answer

    def GetProtobuf(self, *args) -> OutProtobufVector:  # noqa: N802
        _overload("GetProtobuf", args, ((bytes, int, StringVector), 3))
        keys = args[2]
        if self.graph is None or self.destroyed:
            raise AssertionError("GetProtobuf without a stream")
        item = self.results.get()  # blocks, no timeout (the reference)
        if item[0] == "error":
            return OutProtobufVector([MxProtobufOut(errorCode=item[1])])
        return OutProtobufVector([MxProtobufOut(messageName=key, messageBuf=json.dumps(item[1][key.decode()][1])
                                                .encode()) for key in keys if key.decode() in item[1]])

    def DestroyAllStreams(self, *args) -> int:  # noqa: N802
        _overload("DestroyAllStreams", args, ((), 0))
        if "DestroyAllStreams" in self.calls:
            raise AssertionError("DestroyAllStreams twice in one process")
        self.calls.append("DestroyAllStreams")
        self.destroyed = True
        self._management_stop.set()  # MxStreamManager.cpp DestroyAllStreams -> DestroyManagementThreads (joined)
        if self._management is not None:
            self._management.join()
        return self.codes.get("DestroyAllStreams", 0)


def make_sdk(codes: dict | None = None, takes_upstream_format: bool = False) -> types.SimpleNamespace:
    return types.SimpleNamespace(StreamManagerApi=lambda: StreamManagerApi(codes, takes_upstream_format),
                                 StringVector=StringVector,
                                 MxpiDataType=MxpiDataType, MxProtobufIn=MxProtobufIn,
                                 InProtobufVector=InProtobufVector)


def stop_leftovers() -> list:
    """The instances whose management threads still run (InitManager without DestroyAllStreams); stops them so
    that a failing test cannot keep the test process from exiting."""
    alive = [api for api in StreamManagerApi.instances if api.management_threads_alive()]
    for api in alive:
        api._management_stop.set()
        api.destroyed = True
    StreamManagerApi.instances.clear()
    return alive


# --- what a frame's buffer carries ------------------------------------------------------------------------------
def frame_metadata(channel: int, frame_id: int, width: int, height: int, arrays, model_size, dtype_code: int = 0,
                   infer: str = "mxpi_tensorinfer0", resize: str = "mxpi_imageresize0") -> dict:
    """The metadata one frame's buffer carries at the appsink: the model's tensors (batch dimension 1), the
    frame info, and the resize's picture with its preprocessInfo (source size, paste area; field names from
    MxpiDataType.proto MxpiVisionInfo / MxpiVisionPreProcess, as the SDK's own test data shows them in
    mxTools/test/gtest/TestMxpiChannelImagesStitcher/mxpi_channeldistributor0_0.json). The paste area here is
    rounded, not computed as MxpiImageResize.cpp does: the device reads only widthSrc/heightSrc from it."""
    model_h, model_w = model_size
    scale = min(model_w / width, model_h / height)
    paste_w, paste_h = round(width * scale), round(height * scale)
    tensors = {"tensorPackageVec": [{"tensorVec": [
        {"tensorShape": [1] + list(a.shape), "tensorDataType": dtype_code,
         "dataStr": base64.b64encode(a.tobytes()).decode()} for a in arrays]}]}
    vision = {"visionVec": [{"visionInfo": {
        "width": model_w, "height": model_h, "widthAligned": (model_w + 15) // 16 * 16,
        "heightAligned": (model_h + 1) // 2 * 2, "keepAspectRatioScaling": scale,
        "preprocessInfo": [{"widthSrc": width, "heightSrc": height, "cropLeft": 0, "cropRight": width,
                            "cropTop": 0, "cropBottom": height, "pasteLeft": 0, "pasteRight": paste_w,
                            "pasteTop": 0, "pasteBottom": paste_h, "elementName": resize}]}}]}
    return {infer: ("MxpiTensorPackageList", tensors),
            "ReservedFrameInfo": ("MxpiFrameInfo", {"frameId": frame_id, "channelId": channel, "isEos": False}),
            resize: ("MxpiVisionList", vision)}


def decoded_picture(nv12, width: int, height: int) -> tuple:
    """The decoder's picture as the merge re-publishes it (what the resize reads): an aligned NV12 buffer with
    its valid size (mxpi_videodecoder: width aligned to 16, height to 2; reference README "mxpi_videodecoder"),
    the bytes arriving in visionData.dataStr once GetResult copied them to the host (PyDataHelper.cpp
    ParseVisionList)."""
    aligned_h, aligned_w = nv12.shape[0] * 2 // 3, nv12.shape[1]
    return ("MxpiVisionList", {"visionVec": [{
        "visionInfo": {"format": 1, "width": width, "height": height, "widthAligned": aligned_w,
                       "heightAligned": aligned_h},
        "visionData": {"dataStr": base64.b64encode(nv12.tobytes()).decode(), "dataSize": int(nv12.nbytes),
                       "memType": 1}}]})
