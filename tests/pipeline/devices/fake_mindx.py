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

from pipeline.sdk import check_properties

APP_ERR_COMM_FAILURE = 1001  # ErrorCodes.h: APP_ERR_COMM_BASE (1000) + 1
APP_ERR_COMM_INIT_FAIL = 1013  # APP_ERR_COMM_BASE + 13
APP_ERR_STREAM_NOT_EXIST = 6002  # APP_ERR_STREAM_BASE (6000) + 2
APP_ERR_STREAM_ELEMENT_INVALID = 6011  # APP_ERR_STREAM_BASE + 11


# --- MxpiDataType_pb2 -----------------------------------------------------------------------------------------
class _Message:
    def ParseFromString(self, data: bytes) -> None:  # noqa: N802 (protobuf API)
        self._load(json.loads(data.decode()))

    def _load(self, data: dict) -> None:
        for key, value in data.items():
            setattr(self, key, value)


class MxpiTensor(_Message):
    def _load(self, data):
        self.tensorShape = list(data["tensorShape"])
        self.tensorDataType = data["tensorDataType"]
        self.dataStr = base64.b64decode(data["dataStr"])


class MxpiTensorPackage(_Message):
    def _load(self, data):
        self.tensorVec = []
        for item in data["tensorVec"]:
            tensor = MxpiTensor()
            tensor._load(item)
            self.tensorVec.append(tensor)


class MxpiTensorPackageList(_Message):
    def _load(self, data):
        self.tensorPackageVec = []
        for item in data["tensorPackageVec"]:
            package = MxpiTensorPackage()
            package._load(item)
            self.tensorPackageVec.append(package)


class MxpiFrameInfo(_Message):
    """channelId, frameId, isEos (MxpiDataType.proto): no picture size, no time stamp."""


class MxpiVisionList(_Message):
    def _load(self, data):
        self.visionVec = []
        for v in data["visionVec"]:
            info = dict(v["visionInfo"])
            info["preprocessInfo"] = [types.SimpleNamespace(**p) for p in info.get("preprocessInfo", [])]
            self.visionVec.append(types.SimpleNamespace(visionInfo=types.SimpleNamespace(**info)))


MxpiDataType = types.SimpleNamespace(MxpiTensorPackageList=MxpiTensorPackageList, MxpiFrameInfo=MxpiFrameInfo,
                                     MxpiVisionList=MxpiVisionList)


# --- StreamManagerApi -----------------------------------------------------------------------------------------
class StringVector(list):
    def push_back(self, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError("StringVector.push_back takes bytes")
        self.append(value)


def _out(**fields):
    return types.SimpleNamespace(**fields)


class StreamManagerApi:
    """`codes` forces return codes per API; `instances` lets a test reach the instance the device made."""

    instances: list = []

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
            for frame in batch:
                self.results.put(("frame", frame))
            time.sleep(0.002)

    def GetResult(self, streamName: bytes, elementOrPluginId, *rest):  # noqa: N802
        if not isinstance(streamName, bytes):
            raise TypeError("GetResult takes the stream name as bytes")
        if not self._getting.acquire(blocking=False):
            raise AssertionError("GetResult called from two threads at once (not supported by the SDK)")
        try:
            if self.graph is None or self.destroyed or streamName.decode() != self.stream_name:
                return _out(errorCode=APP_ERR_STREAM_NOT_EXIST, errorMsg="Stream not exist.", metadataVec=[],
                            bufferOutput=_out(errorCode=0, data=b""))
            if isinstance(elementOrPluginId, int):
                raise AssertionError("GetResult(stream, outPluginId, timeout) answers an MxDataOutput without "
                                     "metadata; this double covers the keyed form")
            element, keys, timeout_ms = elementOrPluginId, rest[0], rest[1] if len(rest) > 1 else 3000
            if not isinstance(element, bytes) or not isinstance(keys, StringVector):
                raise TypeError("GetResult(bytes, bytes, StringVector, int)")
            if element.decode() not in self.appsinks:
                return _out(errorCode=APP_ERR_STREAM_ELEMENT_INVALID, metadataVec=[],
                            errorMsg=f"ElementName({element.decode()}) is not a name of output element.",
                            bufferOutput=_out(errorCode=0, data=b""))
            try:
                item = self.results.get(timeout=timeout_ms / 1000.0)
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
                                 MxpiDataType=MxpiDataType)


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
