"""The device boundary: StreamManager-shaped. Everything above it is the same code for every device.

A device creates streams from a RunPlan (the graph and everything read from the config, checked once above the
boundary: pipeline/runplan.py), hands out per-frame results, and is destroyed. Asynchrony is part
of the contract: `get_result` blocks up to a timeout while the device decodes and infers on its own threads
(the NPU's or the mock's).
"""

from __future__ import annotations

import abc
import dataclasses
import importlib

from core.errors import UserError
from models.cascade import CascadeRule
from models.spec import ModelSpec
from pipeline.graph import GraphReading
from pipeline.types import CameraStats, FrameResult


class DeviceError(UserError):
    """A device failure: the daemon stops with this message. Carries the API name and return code when the
    device reports one."""

    def __init__(self, message: str, api: str | None = None, code: int | None = None):
        super().__init__(message if api is None else f"{api} returned {code}: {message}")
        self.api = api
        self.code = code


@dataclasses.dataclass(frozen=True)
class CameraSettings:
    """Per-camera settings that are not MindX plugin props (the graph cannot carry them)."""

    camera_id: str
    mode: str  # live | file
    max_frames: int | None = None
    loop: bool = False
    rate_fps: float | None = None
    no_frame_timeout_s: float = 20.0  # the no-frame watchdog: reconnect after this long without a frame
    reconnect_max_s: float = 30.0  # reconnect backoff cap


@dataclasses.dataclass(frozen=True)
class Stage2Settings:
    """A second model on crops of the first's objects (docs/cascade.md). The device decodes the first model's
    outputs with `rule.stage1` (the detections the host reports: it hands them on, decoded once), plans the
    crops around them (models/cascade.py), cuts and infers them; the host decodes the crops' outputs."""

    model_dir: str
    rule: CascadeRule


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    cameras: tuple[CameraSettings, ...]
    max_batch: int
    in_flight: int = 2
    live_queue: int = 2
    threads: int = 0  # inference threads per session, 0: cores / in_flight
    stage2: Stage2Settings | None = None


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a device runs, read and checked once above the boundary (pipeline/runplan.py `plan_run`): the graph
    the MindX SDK receives, its one reading, the models' specs (the manifests beside the graph's modelPaths) and
    the settings the graph cannot carry. A device reads neither the config nor the manifests again."""

    device: str  # the device it was checked for (mock, ascend): another refuses it
    graph: dict  # pipeline.json as the SDK receives it; only the Ascend device hands it on
    streams: GraphReading
    spec: ModelSpec
    settings: DeviceSettings
    spec2: ModelSpec | None = None  # the second stage's model, with settings.stage2


class BaseDevice(abc.ABC):
    kind = ""  # the DEVICES key

    def check_plan_kind(self, plan: RunPlan) -> None:
        if plan.device != self.kind:
            raise DeviceError(f"the {self.kind} device got a run planned and checked for the {plan.device} device "
                              f"(config key `device`)")

    @abc.abstractmethod
    def create_streams(self, plan: RunPlan) -> None:
        """Check what this device alone refuses and start every stream."""

    @abc.abstractmethod
    def get_result(self, timeout_s: float) -> FrameResult | None:
        """The next frame's result, or None after `timeout_s` without one."""

    @abc.abstractmethod
    def finished(self) -> bool:
        """True once every source has ended and every frame taken in has been handed out."""

    @abc.abstractmethod
    def stop_sources(self) -> None:
        """Stop taking new frames; frames already in flight still come out of get_result."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Release everything (threads, sessions, device memory)."""

    @abc.abstractmethod
    def camera_stats(self) -> list[CameraStats]:
        """A snapshot of every camera's counters, in graph order."""

    def lost_frames(self) -> int:
        """Frames the device took in but could not hand out, not attributable to a camera (the Ascend device:
        buffers that reached the appsink with an upstream error or without the model's output)."""
        return 0

    def request_picture(self, camera_id: str) -> None:
        """Hand this camera's next frame on with its decoded picture (FrameResult.nv12), where the device does not
        send every frame's (the Ascend device without a second stage: a picture crossing to the host costs a
        copy). Called from the host's thread; the default (the mock: every frame has its picture) does nothing."""


DEVICES = {
    "mock": ("pipeline.devices.mock.device", "MockDevice"),
    "ascend": ("pipeline.devices.ascend", "AscendDevice"),
}


def create_device(kind: str, **kwargs) -> BaseDevice:
    if kind not in DEVICES:
        raise DeviceError(f"device {kind!r} is not in the device registry (valid: {', '.join(DEVICES)})")
    module_name, class_name = DEVICES[kind]
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)
