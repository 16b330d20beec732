"""A double of the MindX SDK's Python API for testing the Ascend device's glue without the SDK.

It follows the documented call sequence and names (StreamManagerApi: InitManager, CreateMultipleStreams,
GetProtobuf, DestroyAllStreams; StringVector.push_back; MxProtobufOut errorCode/messageName/messageBuf;
MxpiDataType_pb2 messages MxpiTensorPackageList.tensorPackageVec[].tensorVec[] with tensorShape,
tensorDataType, dataStr; MxpiFrameInfo frameId, channelId; MxpiVisionList.visionVec[].visionInfo width,
height), enforces the order of calls and byte-string arguments, and can return scripted error codes. The wire
encoding of its messages is JSON, not protobuf: the code under test only uses ParseFromString and the fields.
"""

from __future__ import annotations

import base64
import json
import queue
import types


class _Message:
    fields: tuple = ()

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
    pass


class MxpiVisionList(_Message):
    def _load(self, data):
        self.visionVec = [types.SimpleNamespace(visionInfo=types.SimpleNamespace(**v["visionInfo"]))
                          for v in data["visionVec"]]


MxpiDataType = types.SimpleNamespace(MxpiTensorPackageList=MxpiTensorPackageList, MxpiFrameInfo=MxpiFrameInfo,
                                     MxpiVisionList=MxpiVisionList)


class StringVector(list):
    def push_back(self, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError("StringVector.push_back takes bytes")
        self.append(value)


def protobuf_out(name: str, payload: dict | None, error_code: int = 0):
    return types.SimpleNamespace(errorCode=error_code, messageName=name,
                                 messageBuf=json.dumps(payload).encode() if payload is not None else b"")


def frame_outputs(channel: int, frame_id: int, width: int, height: int, arrays, dtype_code: int = 0,
                  decoders: int = 1) -> list:
    """What GetProtobuf returns for one frame: tensors, frame info, and per decoder key either the picture
    (the frame's own decoder) or an error code (the other cameras' decoders)."""
    tensors = {"tensorPackageVec": [{"tensorVec": [
        {"tensorShape": [1] + list(a.shape), "tensorDataType": dtype_code,
         "dataStr": base64.b64encode(a.tobytes()).decode()} for a in arrays]}]}
    outputs = [protobuf_out("MxpiTensorPackageList", tensors),
               protobuf_out("MxpiFrameInfo", {"frameId": frame_id, "channelId": channel})]
    for d in range(decoders):
        if d == channel:
            outputs.append(protobuf_out("MxpiVisionList", {"visionVec": [{"visionInfo": {
                "width": width, "height": height, "widthAligned": (width + 15) // 16 * 16,
                "heightAligned": (height + 1) // 2 * 2}}]}))
        else:
            outputs.append(protobuf_out("", None, error_code=1001))
    return outputs


class StreamManagerApi:
    """One instance per test; `script` is a queue of GetProtobuf answers, `codes` forces return codes."""

    instances: list = []

    def __init__(self, codes: dict | None = None):
        self.codes = dict(codes or {})
        self.calls: list[str] = []
        self.graph: dict | None = None
        self.script: "queue.Queue" = queue.Queue()
        self.destroyed = False
        StreamManagerApi.instances.append(self)

    def InitManager(self) -> int:  # noqa: N802
        self.calls.append("InitManager")
        return self.codes.get("InitManager", 0)

    def CreateMultipleStreams(self, graph: bytes) -> int:  # noqa: N802
        if self.calls[-1:] != ["InitManager"]:
            raise AssertionError("CreateMultipleStreams before InitManager")
        if not isinstance(graph, bytes):
            raise TypeError("CreateMultipleStreams takes bytes")
        self.calls.append("CreateMultipleStreams")
        self.graph = json.loads(graph)
        return self.codes.get("CreateMultipleStreams", 0)

    def GetProtobuf(self, stream: bytes, port: int, keys) -> list:  # noqa: N802
        if "CreateMultipleStreams" not in self.calls or self.destroyed:
            raise AssertionError("GetProtobuf without a stream")
        if not isinstance(stream, bytes) or not isinstance(keys, StringVector):
            raise TypeError("GetProtobuf(bytes, int, StringVector)")
        try:
            return self.script.get(timeout=0.2)
        except queue.Empty:
            return []

    def DestroyAllStreams(self) -> int:  # noqa: N802
        self.calls.append("DestroyAllStreams")
        self.destroyed = True
        return self.codes.get("DestroyAllStreams", 0)


def make_sdk(codes: dict | None = None) -> types.SimpleNamespace:
    return types.SimpleNamespace(StreamManagerApi=lambda: StreamManagerApi(codes), StringVector=StringVector,
                                 MxpiDataType=MxpiDataType)
