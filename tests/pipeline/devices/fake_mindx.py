"""A double of the MindX SDK's Python API (StreamManagerApi, MxpiDataType_pb2), built from the SDK's source
(Ascend/VisionSDK, commit f156edc) and its reference (../shared/reference/visionsdk/api_Python.md). Each
behaviour names the file it follows; what the source does, the double does, including what blocks, what is
omitted and what is refused:

- Strings cross the API as bytes: StreamManagerApi.i wraps `vector<std::string>` as StringVector and builds
  with SWIG_PYTHON_STRICT_BYTE_CHAR, so a str is a TypeError, in push_back as in every call.
- CreateMultipleStreams takes bytes, once per process (api_Python.md "CreateMultipleStreams": do not call it
  and DestroyAllStreams repeatedly in one process); it refuses a graph whose plugins' properties the plugins
  would refuse (their ranges: pipeline/sdk.py, derived from plugins.md and each plugin's DefineProperties)
  with APP_ERR_COMM_INIT_FAIL. The SDK itself calls InitManager when it was not called (MxStreamManager.cpp
  CreateMultipleStreams: `if (!dPtr_->isInitialized_) InitManager()`); the double is stricter and asserts the
  explicit InitManager-then-create order the device follows (api_Python.md "InitManager", the samples).
- GetResult on a stream that does not exist (never created, or destroyed) answers APP_ERR_STREAM_NOT_EXIST
  (MxStreamManager.cpp GetResult: IsStreamExist).
- mxpi_tensorinfer fills every batch to the model's LARGEST gear and otherwise waits `waitingTime` ms
  (MxpiTensorInfer.cpp: maxBatchSize_ = modelDesc_.batchSizes.back(); Process runs DataProcess only when
  dataQueue_.size() >= maxBatchSize_; the waiting thread runs the rest after timeTravel_). Each frame leaves as
  its own buffer with batch dimension 1 (outputHasBatchDim defaults to 1).
- GetResult(stream, element, keys, timeout_ms) waits at most timeout_ms and answers APP_ERR_COMM_FAILURE (1001)
  "Get empty result, or exceed the time limit" when nothing came (MxsmStream.cpp GetResult); `element` must be
  an appsink (APP_ERR_STREAM_ELEMENT_INVALID, "ElementName(x) is not a name of output element", otherwise:
  MxsmStream.cpp CheckRequirementsForGetResult); a key the buffer does not carry is OMITTED from
  metadataVec (StreamManagerApi.cpp GetResult skips entries whose dataPtr is null), and an entry carries the
  message TYPE in dataType, never the key; a buffer that carries an upstream error answers its error code and
  message instead (MxsmStream.cpp GenerateMetaAndBufferOutput). Asking for an MxpiVisionList copies its picture
  to the host (PyDataHelper.cpp ParseVisionList): the double counts those bytes (`picture_bytes_copied`).
  GetResult must not run from two threads at once (api_Python.md "GetResult": 输出结果不支持多线程并发).
  The answer's fields (errorCode, errorMsg, metadataVec, bufferOutput) are MxBufferAndMetadataOutput's in
  StreamManagerApi.h. Only the keyed form is modelled: GetResult(stream, outPluginId, timeout), which answers
  an MxDataOutput without metadata, fails the test loudly instead (a limit of the double, not of the SDK).
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
  runs after waitingTime as above, checks each tensor's rank and its dims between the first and the last
  against the model's input dims (CheckTensorShape; an AIPP YUV420SP_U8 OM's are [n, h*1.5, w, 1],
  aclmdlGetInputDimsV2), answering a refused buffer as an error at the appsink, and sends each buffer on with
  one output package per input package, each tensor with batch dimension 1, the buffer's other keys untouched.
  What the model computes is the test's (`StreamManagerApi.models[modelPath]`: uint8 batch -> outputs); when
  it raises RuntimeError (a failed aclmdlExecute), every buffer the plugin holds answers an error
  (ClearResourcesAndSendErrorInfo).
The wire encoding of the messages is JSON, not protobuf (the SDK's MxpiDataType_pb2 cannot be installed here):
the code under test only uses ParseFromString and the fields, whose names follow MxpiDataType.proto.
"""

from __future__ import annotations

import base64
import json
import pathlib
import queue
import threading
import time
import types

import numpy as np

from pipeline.sdk import check_properties

APP_ERR_COMM_FAILURE = 1001  # ErrorCodes.h: APP_ERR_COMM_BASE (1000) + 1
APP_ERR_COMM_INIT_FAIL = 1013  # APP_ERR_COMM_BASE + 13
APP_ERR_STREAM_NOT_EXIST = 6002  # APP_ERR_STREAM_BASE (6000) + 2
APP_ERR_STREAM_ELEMENT_INVALID = 6011  # APP_ERR_STREAM_BASE + 11
APP_ERR_STREAM_INVALID_LINK = 6006  # APP_ERR_STREAM_BASE + 6
APP_PYTHON_INIT_ERROR = -1  # ErrorCodes.h: the Python API before InitManager
APP_ERR_ACL_FAILURE = -1  # ErrorCodes.h: "ACL: general error"


# --- MxpiDataType_pb2 -----------------------------------------------------------------------------------------
class _Message:
    def ParseFromString(self, data: bytes) -> None:  # noqa: N802 (protobuf API)
        self._load(json.loads(data.decode()))

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
    def __init__(self):
        self.tensorShape, self.tensorDataType, self.dataStr = [], 0, b""
        self.memType, self.deviceId, self.tensorDataSize = 0, 0, 0

    def _load(self, data):
        self.tensorShape = list(data["tensorShape"])
        self.tensorDataType = data["tensorDataType"]
        self.dataStr = base64.b64decode(data["dataStr"])
        self.memType = data.get("memType", 0)

    def _dump(self) -> dict:
        return {"tensorShape": list(self.tensorShape), "tensorDataType": self.tensorDataType,
                "dataStr": base64.b64encode(bytes(self.dataStr)).decode(), "memType": self.memType}


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


# --- StreamManagerApi -----------------------------------------------------------------------------------------
class StringVector(list):
    def push_back(self, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError("StringVector.push_back takes bytes")
        self.append(value)


class MxProtobufIn:
    """api_Python.md "MxProtobufIn": key, type, protobuf, all bytes."""

    def __init__(self):
        self.key = None
        self.type = None
        self.protobuf = None


class InProtobufVector(list):
    """api_Python.md "InProtobufVector": a SWIG vector of MxProtobufIn (pop, append, size)."""

    def append(self, item) -> None:
        if not isinstance(item, MxProtobufIn):
            raise TypeError("InProtobufVector holds MxProtobufIn")
        super().append(item)

    push_back = append

    def size(self) -> int:
        return len(self)


def _out(**fields):
    return types.SimpleNamespace(**fields)


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
        manifest = json.loads((pathlib.Path(self.model_path).parent / "manifest.json").read_text())
        self.max_batch = int(manifest["batch_gears"][-1])
        h, w = int(manifest["input_height"]), int(manifest["input_width"])
        self.input_dims = [-1, h * 3 // 2, w, 1]  # aclmdlGetInputDimsV2, static AIPP YUV420SP_U8
        self.waiting_s = int(props.get("waitingTime", "5000")) / 1000.0
        self.results: "queue.Queue" = queue.Queue()
        self.items: list = []  # (buffer, package index), waiting for a batch
        self.first = 0.0


class StreamManagerApi:
    """`codes` forces return codes per API; `instances` lets a test reach the instance the device made."""

    instances: list = []
    models: dict = {}  # modelPath -> what the model computes, for a host-fed stream (uint8 batch -> outputs)

    def __init__(self, codes: dict | None = None):
        self.codes = dict(codes or {})
        self.calls: list = []
        self.graph: dict | None = None
        self.results: "queue.Queue" = queue.Queue()  # buffers at the appsink
        self.destroyed = False
        self.picture_bytes_copied = 0
        self._pending: list = []  # frames waiting in mxpi_tensorinfer for a full batch
        self._first_pending = 0.0
        self._getting = threading.Lock()
        self._batch_lock = threading.Lock()
        self._batcher = None
        self.app_streams: dict = {}  # name -> _AppStream
        self.sent: list = []  # (stream, element, {key: (type, message dict)}) of every SendProtobuf
        StreamManagerApi.instances.append(self)

    def InitManager(self, argStrings=None) -> int:  # noqa: N802
        self.calls.append("InitManager")
        return self.codes.get("InitManager", 0)

    def CreateMultipleStreams(self, graph: bytes) -> int:  # noqa: N802
        if "InitManager" not in self.calls:
            raise AssertionError("CreateMultipleStreams before InitManager")
        if "CreateMultipleStreams" in self.calls:
            raise AssertionError("CreateMultipleStreams twice in one process (api_Python.md forbids it)")
        if not isinstance(graph, bytes):
            raise TypeError("CreateMultipleStreams takes bytes")
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
        if infer is not None:
            props = infer.get("props", {})
            manifest = json.loads((pathlib.Path(props["modelPath"]).parent / "manifest.json").read_text())
            self.max_batch = int(manifest["batch_gears"][-1])  # MxpiTensorInfer: batchSizes.back()
            self.waiting_s = int(props.get("waitingTime", "5000")) / 1000.0
            self._batcher = threading.Thread(target=self._batch_loop, daemon=True)
            self._batcher.start()
        return 0

    # What the stream produces, driven by the test: one decoded frame reaching mxpi_tensorinfer.
    def push_frame(self, metadata: dict) -> None:
        """`metadata`: key -> (type name, message dict) the frame's buffer carries when it reaches the appsink."""
        with self._batch_lock:
            if not self._pending:
                self._first_pending = time.monotonic()
            self._pending.append(metadata)

    def push_error(self, code: int, message: str) -> None:
        """A buffer that carries an upstream plugin's error to the appsink."""
        self.results.put(("error", code, message))

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

    def SendProtobuf(self, streamName: bytes, element, protobufVec) -> int:  # noqa: N802
        if "InitManager" not in self.calls:
            return APP_PYTHON_INIT_ERROR
        if not isinstance(streamName, bytes) or not isinstance(element, (bytes, int)):
            raise TypeError("SendProtobuf(bytes, bytes | int, InProtobufVector)")
        metadata = {}
        for item in protobufVec:
            kind = MESSAGE_TYPES.get(item.type.decode() if isinstance(item.type, bytes) else None)
            if kind is None:
                return APP_ERR_COMM_FAILURE  # "MxpiDataTransfer error: Cannot get descriptor."
            metadata[item.key.decode()] = (kind, json.loads(item.protobuf))
        app = self.app_streams.get(streamName.decode())
        if app is None or self.destroyed:
            return APP_ERR_STREAM_NOT_EXIST
        name = element.decode() if isinstance(element, bytes) else \
            (app.appsrcs[element] if 0 <= element < len(app.appsrcs) else None)
        if name not in app.appsrcs:
            return APP_ERR_STREAM_INVALID_LINK
        self.sent.append((app.name, name, metadata))
        with self._batch_lock:
            found = metadata.get(app.data_source)
            if found is None or found[0] != "MxpiTensorPackageList" or not found[1]["tensorPackageVec"]:
                app.results.put(("error", APP_ERR_COMM_FAILURE, f"Invalid MxpiTensorPackageList is provided from "
                                                                f"input port({app.data_source})."))
                return 0
            for package in found[1]["tensorPackageVec"]:
                for tensor in package["tensorVec"]:
                    shape = tensor["tensorShape"]
                    if len(shape) != len(app.input_dims) or any(
                            d not in (-1, shape[k]) for k, d in enumerate(app.input_dims[1:-1], start=1)):
                        app.results.put(("error", APP_ERR_COMM_FAILURE, "The shape of concated inputTensors[0] "
                                                                        "does not match model inputTensors[0]"))
                        return 0
            buffer = {"metadata": metadata, "count": len(found[1]["tensorPackageVec"]), "outputs": []}
            if not app.items:
                app.first = time.monotonic()
            app.items += [(buffer, i) for i in range(buffer["count"])]
        return 0

    def _run_app_stream(self, app: "_AppStream") -> None:
        """Batches of packages, as MxpiTensorInfer does; a buffer goes on once all its packages ran."""
        while app.items and (len(app.items) >= app.max_batch or time.monotonic() - app.first >= app.waiting_s):
            batch, app.items = app.items[:app.max_batch], app.items[app.max_batch:]
            app.first = time.monotonic()
            arrays = [np.frombuffer(base64.b64decode(buffer["metadata"][app.data_source][1]["tensorPackageVec"][i]
                                                     ["tensorVec"][0]["dataStr"]), np.uint8)
                      for buffer, i in batch]
            h15, w = app.input_dims[1], app.input_dims[2]
            try:
                outputs = StreamManagerApi.models[app.model_path](np.stack([a.reshape(h15, w, 1) for a in arrays]))
            except RuntimeError:
                # A failed inference answers an error for EVERY buffer the plugin holds, not only this batch's
                # (MxpiTensorInfer.cpp ClearResourcesAndSendErrorInfo; aclmdlExecute -> APP_ERR_ACL_FAILURE).
                held = []
                for buffer, _ in batch + app.items:
                    if all(buffer is not b for b in held):
                        held.append(buffer)
                app.items = []
                for _ in held:
                    app.results.put(("error", APP_ERR_ACL_FAILURE, "Model Infer failed."))
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

    def GetResult(self, streamName: bytes, elementOrPluginId, *rest):  # noqa: N802
        if not isinstance(streamName, bytes):
            raise TypeError("GetResult takes the stream name as bytes")
        if not self._getting.acquire(blocking=False):
            raise AssertionError("GetResult called from two threads at once (not supported by the SDK)")
        try:
            app = self.app_streams.get(streamName.decode())
            if self.graph is None or self.destroyed or (streamName.decode() != self.stream_name and app is None):
                return _out(errorCode=APP_ERR_STREAM_NOT_EXIST, errorMsg="Stream not exist.", metadataVec=[],
                            bufferOutput=_out(errorCode=0, data=b""))
            if isinstance(elementOrPluginId, int):
                raise AssertionError("GetResult(stream, outPluginId, timeout) answers an MxDataOutput without "
                                     "metadata; this double covers the keyed form")
            element, keys, timeout_ms = elementOrPluginId, rest[0], rest[1] if len(rest) > 1 else 3000
            if not isinstance(element, bytes) or not isinstance(keys, StringVector):
                raise TypeError("GetResult(bytes, bytes, StringVector, int)")
            if element.decode() not in (app.appsinks if app else self.appsinks):
                return _out(errorCode=APP_ERR_STREAM_ELEMENT_INVALID, metadataVec=[],
                            errorMsg=f"ElementName({element.decode()}) is not a name of output element.",
                            bufferOutput=_out(errorCode=0, data=b""))
            try:
                item = (app.results if app else self.results).get(timeout=timeout_ms / 1000.0)
            except queue.Empty:
                return _out(errorCode=APP_ERR_COMM_FAILURE, metadataVec=[], bufferOutput=_out(errorCode=0, data=b""),
                            errorMsg=f"Get empty result, or exceed the time limit({timeout_ms}).")
            if item[0] == "error":
                return _out(errorCode=item[1], errorMsg=item[2], metadataVec=[],
                            bufferOutput=_out(errorCode=0, data=b""))
            metadata = []
            for key in keys:
                found = item[1].get(key.decode())
                if found is None:
                    continue  # omitted, not reported (StreamManagerApi.cpp)
                kind, message = found
                if kind == "MxpiVisionList":
                    self.picture_bytes_copied += sum(v["visionInfo"]["widthAligned"] * v["visionInfo"]["heightAligned"]
                                                     * 3 // 2 for v in message["visionVec"])
                metadata.append(_out(errorCode=0, errorMsg="", dataType=kind,
                                     serializedMetadata=json.dumps(message).encode()))
            return _out(errorCode=0, errorMsg="", metadataVec=metadata, bufferOutput=_out(errorCode=0, data=b""))
        finally:
            self._getting.release()

    def GetProtobuf(self, stream: bytes, port: int, keys) -> list:  # noqa: N802
        if self.graph is None or self.destroyed:
            raise AssertionError("GetProtobuf without a stream")
        item = self.results.get()  # blocks, no timeout (the reference)
        if item[0] == "error":
            return [_out(errorCode=item[1], messageName=b"", messageBuf=b"")]
        return [_out(errorCode=0, messageName=key, messageBuf=json.dumps(item[1][key.decode()][1]).encode())
                for key in keys if key.decode() in item[1]]

    def DestroyAllStreams(self) -> int:  # noqa: N802
        if "DestroyAllStreams" in self.calls:
            raise AssertionError("DestroyAllStreams twice in one process")
        self.calls.append("DestroyAllStreams")
        self.destroyed = True
        return self.codes.get("DestroyAllStreams", 0)


def make_sdk(codes: dict | None = None) -> types.SimpleNamespace:
    return types.SimpleNamespace(StreamManagerApi=lambda: StreamManagerApi(codes), StringVector=StringVector,
                                 MxpiDataType=MxpiDataType, MxProtobufIn=MxProtobufIn,
                                 InProtobufVector=InProtobufVector)


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
