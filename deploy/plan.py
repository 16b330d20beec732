"""`inspector plan`: how many cameras one Ascend 310 carries, and which unit runs out first.

Budget of one chip (../shared/reference/README.md, "Ascend 310 budget"):
- VDEC, the same for H.264 and H.265 (the vendor's table, VDEC_SOURCE, gives one figure per resolution for both:
  the VDEC takes H.264 BP/MP/HP and H.265 8/10-bit, level 5.1): 4K at 120 fps in total (4 channels of 30 fps
  recommended), 1080p at 480 fps (16 x 30), 720p or less at 960 fps (32 x 30). That is a pixel rate of ~995
  Mpx/s (1080p and 4K alike) and at most 960 frames/s, on at most 32 channels (vdecChannelId 0..31; at 30 fps
  the rate alone gives the vendor's recommended channel counts). Every camera frame is decoded, also the ones
  frame skip drops afterwards. Device memory per channel, given for H.265 with 9 reference frames (H.264 needs
  no more): ~182 MB at 4K, ~56 MB at 1080p, ~35 MB at 720p or less.
- VPC (resize): 1080p at about 1000 fps in practice (1440 fps raw; host-device copies cap it): ~2074 Mpx/s
  of input pixels, and at most 1440 operations/s however small the picture. Only frames that pass frame skip
  are resized. The letterbox is TWO operations on an Ascend 310 (MxpiImageResize.cpp DvppResizeAndCrop: a
  VpcResize of the camera frame, then a VpcCropAndPaste of the resized picture into the padded model input).
- NPU: the model's inference rate at the batch size used. Given (`--npu-fps`, measured on a box with
  `msame` or the daemon) or estimated as the RANGE the published anchors give, each scaled by the model's
  computation: a MindSpore YOLOv4-608 batch-1 CI threshold (14 fps, a lower bound), a YOLOv4-608 sample
  keeping up with a 1080p25 camera (24.9 fps), a TensorFlow YOLOv3-416 sample (81.7 fps; 65.9 GFLOPs by
  Darknet's count). Batching is assumed to add 30% throughput at batch 4 or more (a typical gain for
  dynamic-batch OMs; measure it). The camera count uses the low end; estimates are labelled as such.
- Host: what is left on the box's ARM cores (NMS, the detection line, the outbox, zones and rules, metrics),
  one core for the daemon's main loop: the per-frame host time measured here by the host-only benchmark
  (`inspector bench --host-only`: 0.2 ms per frame at 5 detections, 2026-11-26, docs/performance.md) times
  ARM_FACTOR, an estimate of how much slower one Atlas 200/500 Cortex-A55 core is than one core here, plus
  the protobuf parsing the benchmark cannot include. `--host-ms` gives a figure measured on a box.
- A second stage (`--stage2-cfg`, docs/cascade.md): its NPU time per frame (crops per frame / its inference
  rate at the same batch) adds to the first model's; the host cuts the crops from the decoded picture, which is
  copied from the device on every inferred frame (width x height x 1.5 bytes, reported as MB/s per camera), at
  CROP_HOST_MS_HERE per ten crops of a 1080p frame here (docs/bench/ascend-crop-cost-1080p.txt) x ARM_FACTOR.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from models.darknet_cfg import parse_cfg

VDEC_SOURCE = ("CANN 8.0.0 application development guide, \"VDEC Performance Specifications\", table for the "
               "Atlas 200/300/500 inference product (Ascend 310); the same in CANN 5.0.4")
VDEC_PIXEL_RATE = 1920 * 1080 * 480.0  # = 3840 x 2160 x 120
VDEC_FRAME_RATE = 960.0  # 720p or less
VDEC_CHANNELS = 32
# (largest picture of the class, its name, total fps, MB of device memory per channel (H.265, 9 ref. frames)).
VDEC_TABLE = ((1280 * 720, "720p", 960, 35), (1920 * 1080, "1080p", 480, 56), (3840 * 2160, "4K", 120, 182))
CODECS = {"h264": "H.264", "h265": "H.265"}
VPC_PIXEL_RATE = 1920 * 1080 * 1000.0
VPC_OPERATIONS = 1440.0  # per second, the raw 1080p rate: a small picture costs at least this
LETTERBOX_OPERATIONS = 2
# (what, GFLOPs of the network it ran, fps at batch 1) from ../shared/reference/README.md "Ascend 310 budget".
ANCHORS = (("MindSpore YOLOv4-608 CI threshold", ("yolov4", 608), 14.0),
           ("YOLOv4-608 sample at 1080p25", ("yolov4", 608), 24.9),
           ("TensorFlow YOLOv3-416 sample", 65.9, 81.7))
BATCH_GAIN = {1: 1.0, 2: 1.15, 4: 1.3, 8: 1.3}
HOST_MS_HERE = 0.2  # `inspector bench --host-only`, 5 detections per frame, main thread, this machine
ARM_FACTOR = 4.0  # estimate: one box core vs one core here
CROP_HOST_MS_HERE = 0.51  # parents, cut, letterbox and serialise of 10 crops of a 1080p frame, this machine
CROPS_PER_FRAME = 10.0  # the demo clip's mean (docs/cascade.md); --crops-per-frame for a site's own figure


@dataclasses.dataclass(frozen=True)
class Stage2:
    """A second model on crops: its network, input size, crops per inferred frame and (given) NPU rate."""

    cfg: str
    size: int
    crops_per_frame: float = CROPS_PER_FRAME
    npu_fps: Optional[float] = None


def gflops(cfg_name: str, size: int, classes: int = 80) -> float:
    """Multiply-adds x 2 of every convolution, in GFLOPs, from the parsed cfg."""
    cfg = parse_cfg(cfg_name, classes=classes, height=size, width=size)
    total, in_channels = 0.0, int(cfg.net.get("channels", 3))
    for layer in cfg.layers:
        if layer.kind == "convolutional":
            k = layer.get("size", 1, int)
            groups = layer.get("groups", 1, int)
            total += 2.0 * k * k * (in_channels / groups) * layer.out_channels * layer.out_height * layer.out_width
        in_channels = layer.out_channels
    return total / 1e9


def estimated_npu_fps(cfg_name: str, size: int, batch: int) -> tuple:
    """(low, high) inferences/s: every anchor scaled by the computation, at this batch."""
    own = gflops(cfg_name, size)
    rates = []
    for _, network, fps in ANCHORS:
        anchor_gflops = gflops(*network) if isinstance(network, tuple) else network
        rates.append(fps * anchor_gflops / own * BATCH_GAIN.get(batch, 1.3))
    return min(rates), max(rates)


def vdec_frames_per_second(pixels: int) -> float:
    """Frames/s of this size the VDEC decodes in total, over all channels, H.264 or H.265."""
    return min(VDEC_FRAME_RATE, VDEC_PIXEL_RATE / pixels)


def vdec_memory_mb(pixels: int) -> float:
    """Device memory one channel of this picture size holds (the vendor's figure of the next class up)."""
    return next((mb for largest, _, _, mb in VDEC_TABLE if pixels <= largest), VDEC_TABLE[-1][3] * pixels /
                VDEC_TABLE[-1][0])


def vpc_seconds_per_frame(width: int, height: int, model_size: int) -> float:
    """The two operations of a letterbox: the camera frame's resize, then the paste of the resized picture."""
    def operation(pixels: float) -> float:
        return max(pixels / VPC_PIXEL_RATE, 1.0 / VPC_OPERATIONS)
    return operation(width * height) + operation(model_size * model_size)


@dataclasses.dataclass(frozen=True)
class Plan:
    cfg: str
    size: int
    batch: int
    camera: str
    camera_fps: float
    frame_skip: int
    npu_fps: float  # the rate the camera count uses (the low end of an estimate)
    npu_fps_high: float
    npu_fps_source: str
    host_ms: float
    limits: dict
    cameras: int
    bottleneck: str
    stage2: Optional[dict] = None  # with a second stage: its NPU rate, crops, picture copy and host time
    codec: str = "h264"
    vdec_mb_per_camera: float = 0.0  # device memory of one decoding channel

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan(cfg_name: str, size: int, width: int, height: int, camera_fps: float, frame_skip: int = 0, batch: int = 4,
         npu_fps: Optional[float] = None, host_ms: Optional[float] = None, stage2: Optional[Stage2] = None,
         codec: str = "h264") -> Plan:
    if codec not in CODECS:
        raise ValueError(f"codec {codec!r}: the Ascend 310 decodes {' and '.join(CODECS)}")
    inferred_fps = camera_fps / (frame_skip + 1)
    pixels = width * height
    if npu_fps is None:
        npu_fps, npu_high = estimated_npu_fps(cfg_name, size, batch)
        source = "estimated from published anchors (range; the low end counts)"
    else:
        npu_high, source = npu_fps, "given"
    host_ms = host_ms if host_ms is not None else HOST_MS_HERE * ARM_FACTOR
    npu_seconds = 1.0 / npu_fps  # per inferred frame
    cascade = None
    if stage2 is not None:
        if stage2.npu_fps is None:
            low2, high2 = estimated_npu_fps(stage2.cfg, stage2.size, batch)
        else:
            low2 = high2 = stage2.npu_fps
        npu_seconds += stage2.crops_per_frame / low2
        crop_ms = CROP_HOST_MS_HERE * ARM_FACTOR * stage2.crops_per_frame / 10.0
        host_ms += crop_ms
        cascade = {"cfg": stage2.cfg, "size": stage2.size, "crops_per_frame": stage2.crops_per_frame,
                   "npu_fps": round(low2, 1), "npu_fps_high": round(high2, 1),
                   "picture_copy_mb_s_per_camera": round(pixels * 1.5 * inferred_fps / 1e6, 1),
                   "host_ms_for_crops": round(crop_ms, 2)}
    limits = {
        "VDEC": vdec_frames_per_second(pixels) / camera_fps,
        "VDEC channels": float(VDEC_CHANNELS),
        "VPC": 1.0 / (vpc_seconds_per_frame(width, height, size) * inferred_fps),
        "NPU": 1.0 / (npu_seconds * inferred_fps),
        "host": 1000.0 / (host_ms * inferred_fps),
    }
    bottleneck = min(limits, key=limits.get)
    return Plan(cfg_name, size, batch, f"{width}x{height}", camera_fps, frame_skip, round(npu_fps, 1),
                round(npu_high, 1), source, round(host_ms, 2), {k: round(v, 1) for k, v in limits.items()},
                int(limits[bottleneck]), bottleneck, cascade, codec, float(vdec_memory_mb(pixels)))


def format_plans(plans: list[Plan]) -> str:
    header = (f"{'network':<12} {'size':>4} {'batch':>5} {'camera':>10} {'fps':>5} {'skip':>4} {'NPU fps':>11} "
              f"{'VDEC':>6} {'VPC':>6} {'NPU':>6} {'host':>6} {'cameras':>7}  bottleneck")
    lines = [header, "-" * len(header)]
    for p in plans:
        rate = f"{p.npu_fps:.0f}-{p.npu_fps_high:.0f}" if p.npu_fps_high != p.npu_fps else f"{p.npu_fps:.1f}"
        lines.append(f"{p.cfg:<12} {p.size:>4} {p.batch:>5} {p.camera:>10} {p.camera_fps:>5g} {p.frame_skip:>4} "
                     f"{rate:>11} {p.limits['VDEC']:>6.1f} {p.limits['VPC']:>6.1f} {p.limits['NPU']:>6.1f} "
                     f"{p.limits['host']:>6.1f} {p.cameras:>7}  {p.bottleneck}")
    lines.append(f"host: {plans[0].host_ms if plans else 0:.1f} ms per frame on one box core (measured here x "
                 f"{ARM_FACTOR:g}, an estimate; --host-ms to give a measured figure); VPC: a letterbox is "
                 f"{LETTERBOX_OPERATIONS} operations")
    if plans:
        budget = ", ".join(f"{name} {fps} fps ({fps // 30} x 30, ~{mb} MB each)" for _, name, fps, mb in VDEC_TABLE)
        lines.append(f"VDEC, H.264 and H.265 alike: {budget}, {VDEC_CHANNELS} channels; here "
                     f"{', '.join(sorted({CODECS[p.codec] for p in plans}))} at {plans[0].camera}: "
                     f"~{plans[0].vdec_mb_per_camera:g} MB of device memory per camera")
        lines.append(f"  (VDEC figures: {VDEC_SOURCE})")
    cascade = next((p.stage2 for p in plans if p.stage2), None)
    if cascade:
        lines.append(f"second stage: {cascade['cfg']} at {cascade['size']}, {cascade['crops_per_frame']:g} crops a "
                     f"frame at {cascade['npu_fps']:g} crops/s on the NPU (in the NPU column), the decoded picture "
                     f"copied to the host at {cascade['picture_copy_mb_s_per_camera']:g} MB/s per camera, "
                     f"{cascade['host_ms_for_crops']:g} ms of host time a frame for the crops (in the host column)")
    return "\n".join(lines)
