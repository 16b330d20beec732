"""The daemon's YAML config: typed, strict (unknown keys are errors), every key documented here.

Errors name the file, the key path, the offending value and the reason. Credentials never live in the file:
a camera URL carries `${VAR}` placeholders that are expanded from the environment when the stream opens, and
every URL shown in a log, a metric or an error goes through `redact_url`.

Example:

    cameras:
      - id: line-12-tower-3
        url: rtsp://viewer:${TOWER3_PASSWORD}@10.20.0.13:554/Streaming/Channels/101
        frame_skip: 1
    model: /opt/inspector/models/insulator-416
    batching: {max_batch: 4, waiting_time_ms: 40, dynamic_strategy: Upper}
    thresholds: {score: 0.3, nms_iou: 0.45, per_class: {defect: 0.2}}
    output: {directory: /var/lib/inspector/out}
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from core.configfile import Strict, format_validation_errors, read_yaml
from core.errors import ConfigError
from core.urls import (PLACEHOLDER, expand_placeholders, inline_password, placeholder_values, redact_url, scrub,
                       split_userinfo)

__all__ = ["ConfigError", "PLACEHOLDER", "expand_placeholders", "inline_password", "placeholder_values", "redact_url",
           "scrub", "split_userinfo", "format_validation_errors", "read_yaml", "Strict", "DaemonConfig",
           "parse_config", "load_config", "NAME_PATTERN"]

# A camera id or zone name: it becomes a directory name (snapshots), a URL path segment (web) and a metric label,
# so no separators, no leading dot.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


class ZoneConfig(Strict):
    name: str = Field(description="Zone name, used in events.", pattern=f"^{NAME_PATTERN}$")
    polygon: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        min_length=3, description="Corners as [x, y] fractions of the frame (0..1), so resolution changes keep "
                                  "the zone.")
    classes: Optional[list[str]] = Field(None, description="Only these classes count here (default: all).")
    min_score: float = Field(0.0, ge=0, le=1, description="Minimum score in this zone.")
    min_area: float = Field(0.0, ge=0, le=1, description="Minimum box area as a fraction of the frame.")

    @field_validator("polygon")
    @classmethod
    def _relative(cls, polygon):
        if any(not (0.0 <= v <= 1.0) for point in polygon for v in point):
            raise ValueError("polygon corners are fractions of the frame, between 0 and 1")
        return polygon


class AlarmConfig(Strict):
    min_hits: int = Field(3, ge=1, description="Frames an object must be seen before its event starts.")
    window: int = Field(5, ge=1, description="Recent scores considered by median_score.")
    median_score: Optional[float] = Field(None, ge=0, le=1, description="Also require the median of the recent "
                                                                     "scores at or above this.")
    match_iou: float = Field(0.3, gt=0, le=1, description="Box overlap that continues a tracked object.")
    lost_after_s: float = Field(5.0, gt=0, description="An event ends when its object is unseen this long.")
    update_interval_s: float = Field(10.0, gt=0, description="At most one update per event this often.")
    cooldown_s: float = Field(60.0, ge=0, description="After an event ends, no new one for the same camera, "
                                                      "zone and class for this long.")


class CameraConfig(Strict):
    id: str = Field(description="Stable camera name: used in outputs, logs and metrics. Letters, digits, "
                                "'-', '_', '.'.", pattern=f"^{NAME_PATTERN}$")
    url: str = Field(description="rtsp:// URL (credentials as ${VAR} placeholders) or a local video file path.")
    codec: Literal["h264", "h265", "auto"] = Field(
        "auto", description="What the camera streams; the box's video decoder is set up for it (mxpi_videodecoder "
                            "inputVideoFormat). auto: asked from the camera by validate, run and render "
                            "(pipeline/codecs.py); render refuses an auto it cannot resolve.")
    mode: Optional[Literal["live", "file"]] = Field(
        None, description="live: latency-bounded, the oldest frames are dropped when the model falls behind "
                          "(default for rtsp://). file: every frame is processed (default for file paths).")
    frame_skip: int = Field(0, ge=0, le=100, description="Pass one frame in frame_skip + 1 (mxpi_skipframe).")
    max_frames: Optional[int] = Field(None, ge=1, description="Stop this camera after this many decoded frames "
                                                           "(tests, benchmarks, sampling a recording).")
    loop: bool = Field(False, description="Restart a file source at its end (the demo, soak tests).")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Zones and filters; none: the whole frame "
                                                                      "is one zone named `frame`.")
    rate_fps: Optional[float] = Field(None, gt=0, le=240, description="Deliver a file source's frames at this rate, "
                                                                   "as a live camera would (benchmarks, tests); "
                                                                   "default: as fast as it decodes.")
    no_frame_timeout_s: float = Field(20.0, ge=1, le=3600, description="No-frame watchdog: a live camera that "
                                                                      "delivers no frame for this long is "
                                                                      "reconnected and reported degraded.")
    reconnect_max_s: float = Field(30.0, ge=0.5, le=3600, description="Reconnect backoff doubles from 0.5 s up "
                                                                      "to this (each wait jittered by +-20%).")

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, url: str) -> str:
        if inline_password(url):
            raise ValueError("the URL holds a password: put it in the environment and write ${VAR} instead")
        return url

    @property
    def is_rtsp(self) -> bool:
        return self.url.lower().startswith(("rtsp://", "rtsps://"))

    @property
    def effective_mode(self) -> str:
        return self.mode or ("live" if self.is_rtsp else "file")


class BatchingConfig(Strict):
    max_batch: int = Field(4, ge=1, description="Largest batch; must be one of the model's dynamic-batch gears.")
    waiting_time_ms: int = Field(40, ge=1, le=5000, description="How long a partial batch waits for more frames "
                                                                "(mxpi_tensorinfer waitingTime, which the SDK "
                                                                "takes from 1 ms).")
    dynamic_strategy: Literal["Nearest", "Upper", "Lower"] = Field(
        "Upper", description="Gear for a partial batch: Upper pads up to the next gear (no frame waits again), "
                             "Lower runs the largest gear that fits and keeps the rest, Nearest the closest.")
    in_flight: int = Field(2, ge=1, le=8, description="Batches inferred at the same time (mock device: one "
                                                      "runtime session each).")
    threads: int = Field(0, ge=0, le=256, description="Mock device: threads per inference session; 0: the CPU "
                                                      "count / in_flight (see docs/performance.md).")


class ThresholdConfig(Strict):
    score: float = Field(0.3, gt=0, lt=1, description="Minimum class score (objectness x class) to keep a box.")
    nms_iou: float = Field(0.45, gt=0, le=1, description="IoU above which a lower-scored box of the same class "
                                                         "is suppressed.")
    per_class: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict, description="Score threshold per class name (0 < t < 1), overriding `score`.")
    max_detections: int = Field(100, ge=1, description="Most detections kept per frame, best first.")


class Stage2Config(Strict):
    """A second model on crops of the first's objects, cut from the full-resolution frame (docs/cascade.md)."""
    model: str = Field(description="Exported second-stage model directory (trained by `inspector train` with "
                                   "data.crops; its manifest says where it looks: parents, margin, tiles).")
    parents: Optional[list[str]] = Field(None, min_length=1, description="First-stage classes whose objects are "
                                                                         "cropped (default: the manifest's "
                                                                         "crops.parents).")
    max_crops: int = Field(32, ge=1, le=256, description="Most crops per frame (best parents first); the rest of "
                                                         "a frame's parents are not examined (counted).")
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig, description="The second model's "
                                                                                     "thresholds (its classes).")
    shared_classes: Literal["merge", "second"] = Field(
        "merge", description="A class both models detect: `merge` reports the first model's detections of it "
                             "beside the second's (above the second's threshold, one NMS over both: a defect "
                             "outside every crop is still reported, one both found once); `second` reports it "
                             "from the second model only.")


MessageKind = Literal["events", "detections"]
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class JsonlSinkConfig(Strict):
    enabled: bool = Field(True, description="Write detections.jsonl and events.jsonl in output.directory.")
    messages: list[MessageKind] = Field(["detections", "events"], description="What is written.")
    max_bytes: int = Field(100 * 2**20, ge=4096, description="Rotate a file at this size (name.jsonl.1, .2, ...).")
    backups: int = Field(10, ge=0, le=1000, description="Rotated files kept per kind; the oldest is deleted.")


class MqttSinkConfig(Strict):
    host: str = Field(description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    topic_prefix: str = Field("inspector", pattern=r"^[^#+]+$", description="Events go to <prefix>/events/"
                                                                            "<camera>, detections to <prefix>/"
                                                                            "detections/<camera>, the daemon's "
                                                                            "online/offline to <prefix>/status. "
                                                                            "${VAR} expands from the environment.")
    messages: list[MessageKind] = Field(["events"], description="What is published (detections: every frame).")
    client_id: Optional[str] = Field(None, description="MQTT client id (default: inspector-<hostname>); ${VAR} "
                                                    "expands from the environment.")
    username_env: Optional[str] = Field(None, pattern=ENV_NAME, description="Environment variable with the user.")
    password_env: Optional[str] = Field(None, pattern=ENV_NAME, description="Environment variable with the password.")
    tls: bool = Field(False, description="Connect with TLS (the system CAs unless ca_file is given).")
    ca_file: Optional[str] = Field(None, description="CA bundle for the broker's certificate.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive.")
    ack_timeout_s: float = Field(10.0, gt=0, description="A publish not acknowledged (PUBACK) in this time is "
                                                         "retried.")


class WebhookSinkConfig(Strict):
    url: str = Field(pattern=r"^https?://", description="POST target; one JSON message per request.")
    messages: list[MessageKind] = Field(["events"], description="What is posted.")
    token_env: Optional[str] = Field(None, pattern=ENV_NAME, description="Environment variable with a bearer token.")
    timeout_s: float = Field(10.0, gt=0, description="Request timeout.")


class RetryConfig(Strict):
    initial_s: float = Field(1.0, gt=0, description="First retry delay after a failed delivery.")
    max_s: float = Field(60.0, gt=0, description="The delay doubles up to this; each wait is jittered "
                                                 "(50-100% of the delay).")


class OutputConfig(Strict):
    directory: str = Field("out", description="Where detections.jsonl, events.jsonl, status.json and the outbox "
                                              "live (created if missing).")
    jsonl: JsonlSinkConfig = Field(default_factory=JsonlSinkConfig)
    mqtt: Optional[MqttSinkConfig] = Field(None, description="MQTT output (paho-mqtt, QoS 1).")
    webhook: Optional[WebhookSinkConfig] = Field(None, description="HTTP webhook output.")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    outbox_max_messages: int = Field(1_000_000, ge=1000, description="Undelivered messages kept in the outbox; "
                                                                     "beyond it the oldest detections are dropped "
                                                                     "first (counted), events last.")
    shutdown_grace_s: float = Field(5.0, ge=0, description="On stop, time given to network sinks to deliver; what "
                                                           "is left stays in the outbox for the next start.")


class SnapshotConfig(Strict):
    enabled: bool = Field(True, description="A JPEG with boxes for every event (its best frame).")
    directory: Optional[str] = Field(None, description="Default: <output.directory>/snapshots.")
    max_count: int = Field(2000, ge=1, description="Most snapshot files kept; the oldest go first.")
    max_age_days: float = Field(30.0, gt=0, description="Snapshots older than this are deleted.")
    max_megabytes: float = Field(1024.0, gt=0, description="Most disk space the snapshots may use.")
    min_free_megabytes: float = Field(500.0, ge=0, description="Delete old snapshots (and skip new ones) while "
                                                               "the disk has less free space than this.")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality.")


class ReviewConfig(Strict):
    enabled: bool = Field(True, description="Keep an index of the events (events.sqlite in output.directory) "
                                            "for the events view (/events, /api/events), where a person marks "
                                            "each confirmed or a false alarm; each decision goes to the outputs "
                                            "as an `update` message with `review`.")
    max_events: int = Field(100_000, ge=100, description="Events kept in the index; beyond, the oldest are "
                                                          "removed (counted). Their snapshots follow `snapshots`' "
                                                          "own retention.")


class SamplesConfig(Strict):
    enabled: bool = Field(False, description="Keep full-resolution frames worth labelling, with the models' "
                                             "predictions, on this box (nothing leaves it unless exported with "
                                             "`inspector samples export`): each event's best frame, frames whose "
                                             "best score is uncertain, and a sparse random sample per camera.")
    directory: Optional[str] = Field(None, description="Default: <output.directory>/samples.")
    max_megabytes: float = Field(2048.0, gt=0, description="Disk quota of the kept frames; beyond it the oldest "
                                                           "are deleted first (counted).")
    max_age_days: float = Field(90.0, gt=0, description="Kept frames older than this are deleted.")
    min_free_megabytes: float = Field(1000.0, ge=0, description="Keep nothing new, and delete the oldest, while "
                                                                "the disk has less free space than this.")
    events: bool = Field(True, description="Keep each event's best frame (a person's decision on the event "
                                           "decides its labels at export: a false alarm's box is removed).")
    uncertain: Optional[list[float]] = Field(
        [0.3, 0.5], min_length=2, max_length=2, description="Keep a frame whose best detection score lies in "
                                                             "[low, high) (null: none).")
    uncertain_interval_s: float = Field(60.0, ge=0, description="At most one uncertain frame per camera this often.")
    random_interval_s: float = Field(3600.0, ge=0, description="A random frame per camera about this often, "
                                                               "detections or not (the misses a model cannot "
                                                               "flag itself); 0: none.")
    jpeg_quality: int = Field(95, ge=50, le=100, description="JPEG quality of the kept frames (no boxes drawn).")

    @model_validator(mode="after")
    def _band(self):
        if self.uncertain is not None and not 0 <= self.uncertain[0] < self.uncertain[1] <= 1:
            raise ValueError(f"uncertain: {list(self.uncertain)} is not a band [low, high) within [0, 1]")
        return self


class HttpConfig(Strict):
    enabled: bool = Field(True, description="Serve /metrics, /healthz, /snapshot/<camera> and the status page.")
    host: str = Field("127.0.0.1", description="Bind address: 127.0.0.1 or ::1 (this machine only); 0.0.0.0, :: "
                                               "or an interface address expose camera pictures, events and status "
                                               "to the network, which needs token_env (or "
                                               "allow_unauthenticated).")
    port: int = Field(8310, ge=0, le=65535, description="Port (0: any free port, written to status.json).")
    token_env: Optional[str] = Field(None, pattern=ENV_NAME, description="Environment variable with a bearer token "
                                                                      "every request but /healthz must carry.")
    allow_unauthenticated: bool = Field(False, description="Serve a non-loopback host without a token anyway "
                                                           "(a warning at every start). Only behind a proxy that "
                                                           "authenticates.")
    idle_timeout_s: float = Field(30.0, gt=0, le=3600, description="A request must arrive whole (request line "
                                                                    "and headers) within this long of the "
                                                                    "connection's start or its previous request, "
                                                                    "or the connection is closed.")
    max_connections: int = Field(32, ge=1, le=1024, description="Connections served at once; beyond, a new one "
                                                                "gets 503 at once (status pages and scrapers "
                                                                "need a few).")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @model_validator(mode="after")
    def _exposed_needs_token(self):
        if self.enabled and not self.loopback and self.token_env is None and not self.allow_unauthenticated:
            raise ValueError(f"host {self.host!r} is reachable from the network and no token_env is set: camera "
                             "pictures, events and status would be served to anyone. Set token_env, bind "
                             "127.0.0.1, or set allow_unauthenticated: true behind an authenticating proxy")
        return self


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, ::, a name, an interface) may be reachable."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DaemonConfig(Strict):
    cameras: list[CameraConfig] = Field(min_length=1, description="The cameras; ids must be unique.")
    model: str = Field(description="Exported model directory (manifest.json beside the model file).")
    device: Literal["mock", "ascend"] = Field("mock", description="mock: the CPU emulation; ascend: MindX SDK.")
    device_id: int = Field(0, ge=0, description="NPU device id (ascend) written into the graph.")
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    stage2: Optional[Stage2Config] = Field(None, description="A second model on crops of the first's objects "
                                                             "(mock device; see docs/cascade.md). Its classes "
                                                             "replace the first model's classes of the same name.")
    output: OutputConfig = Field(default_factory=OutputConfig)
    alarm: AlarmConfig = Field(default_factory=AlarmConfig, description="When detections become events.")
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    samples: SamplesConfig = Field(default_factory=SamplesConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    summary_interval_s: float = Field(5.0, gt=0, description="Seconds between per-camera summary lines.")
    live_queue: Optional[int] = Field(None, ge=1, le=64, description="Frames a live camera may hold before the "
                                                                 "oldest is dropped (counted per camera). "
                                                                 "Default: one batch across the live cameras "
                                                                 "(ceil(max_batch / live cameras)), which keeps "
                                                                 "latency near two batch times under overload.")

    @property
    def effective_live_queue(self) -> int:
        if self.live_queue is not None:
            return self.live_queue
        live = sum(1 for c in self.cameras if c.effective_mode == "live")
        return max(1, -(-self.batching.max_batch // max(1, live)))

    @model_validator(mode="after")
    def _unique_ids(self):
        seen = set()
        for index, camera in enumerate(self.cameras):
            if camera.id in seen:
                raise ValueError(f"cameras[{index}].id {camera.id!r} is used twice")
            seen.add(camera.id)
        return self


def parse_config(data: object, source: str = "<config>", base_dir: Optional[pathlib.Path] = None) -> DaemonConfig:
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_errors(source, exc)) from None
    if base_dir is not None:
        # Relative paths are relative to the config file, not to wherever the daemon was started.
        def resolve(p: str) -> str:
            return p if os.path.isabs(p) else str((base_dir / p).resolve())

        config = config.model_copy(update={
            "model": resolve(config.model),
            "stage2": config.stage2 and config.stage2.model_copy(update={"model": resolve(config.stage2.model)}),
            "output": config.output.model_copy(update={
                "directory": resolve(config.output.directory),
                "mqtt": config.output.mqtt and config.output.mqtt.model_copy(update={
                    "ca_file": config.output.mqtt.ca_file and resolve(config.output.mqtt.ca_file)})}),
            "snapshots": config.snapshots.model_copy(update={
                "directory": config.snapshots.directory and resolve(config.snapshots.directory)}),
            "samples": config.samples.model_copy(update={
                "directory": config.samples.directory and resolve(config.samples.directory)}),
            "cameras": [c if c.is_rtsp else c.model_copy(update={"url": resolve(c.url)}) for c in config.cameras],
        })
    return config


def load_config(path: Union[str, pathlib.Path]) -> DaemonConfig:
    path = pathlib.Path(path)
    return parse_config(read_yaml(path), str(path), path.parent.resolve())
