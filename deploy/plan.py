"""`inspector plan`: how many cameras one Ascend 310 carries, and which unit runs out first.

Budget of one chip (../shared/reference/README.md, "Ascend 310 budget"):
- VDEC: 1080p at 480 fps in total (16 channels x 30 fps), 4K at 120 fps: a pixel rate of ~995 Mpx/s, and at
  most 16 channels. Every camera frame is decoded, also the ones frame skip drops afterwards.
- VPC (resize): 1080p at about 1000 fps in practice (1440 fps raw; host-device copies cap it): ~2074 Mpx/s
  of input pixels. Only frames that pass frame skip are resized.
- NPU: the model's inference rate at the batch size used. Given (`--npu-fps`, measured on a box with
  `msame` or the daemon) or estimated by scaling a published anchor point by the model's computation: a
  MindSpore YOLOv4-608 batch-1 CI threshold implies at least ~14 fps per chip (the conservative anchor; one
  YOLOv4-608 sample keeps up with a 1080p25 camera, 24.9 fps). Batching is assumed to add 30% throughput at
  batch 4 or more (a typical gain for dynamic-batch OMs; measure it). Estimates are labelled as such.
"""

from __future__ import annotations

import dataclasses

from models.darknet_cfg import parse_cfg

VDEC_PIXEL_RATE = 1920 * 1080 * 480.0
VDEC_CHANNELS = 16
VPC_PIXEL_RATE = 1920 * 1080 * 1000.0
ANCHOR = ("yolov4", 608, 14.0)  # (cfg, size, fps at batch 1): conservative published lower bound
BATCH_GAIN = {1: 1.0, 2: 1.15, 4: 1.3, 8: 1.3}


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


def estimated_npu_fps(cfg_name: str, size: int, batch: int) -> float:
    anchor_cfg, anchor_size, anchor_fps = ANCHOR
    fps = anchor_fps * gflops(anchor_cfg, anchor_size) / gflops(cfg_name, size)
    return fps * BATCH_GAIN.get(batch, 1.3)


@dataclasses.dataclass(frozen=True)
class Plan:
    cfg: str
    size: int
    batch: int
    camera: str
    camera_fps: float
    frame_skip: int
    npu_fps: float
    npu_fps_source: str
    limits: dict
    cameras: int
    bottleneck: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def plan(cfg_name: str, size: int, width: int, height: int, camera_fps: float, frame_skip: int = 0, batch: int = 4,
         npu_fps: float | None = None) -> Plan:
    inferred_fps = camera_fps / (frame_skip + 1)
    pixels = width * height
    if npu_fps is None:
        npu_fps, source = estimated_npu_fps(cfg_name, size, batch), "estimated (scaled from YOLOv4-608 at 14 fps)"
    else:
        source = "given"
    limits = {
        "VDEC": VDEC_PIXEL_RATE / (pixels * camera_fps),
        "VDEC channels": float(VDEC_CHANNELS),
        "VPC": VPC_PIXEL_RATE / (pixels * inferred_fps),
        "NPU": npu_fps / inferred_fps,
    }
    bottleneck = min(limits, key=limits.get)
    return Plan(cfg_name, size, batch, f"{width}x{height}", camera_fps, frame_skip, round(npu_fps, 1), source,
                {k: round(v, 1) for k, v in limits.items()}, int(limits[bottleneck]), bottleneck)


def format_plans(plans: list[Plan]) -> str:
    header = (f"{'network':<12} {'size':>4} {'batch':>5} {'camera':>10} {'fps':>5} {'skip':>4} {'NPU fps':>8} "
              f"{'VDEC':>6} {'VPC':>6} {'NPU':>6} {'cameras':>7}  bottleneck")
    lines = [header, "-" * len(header)]
    for p in plans:
        lines.append(f"{p.cfg:<12} {p.size:>4} {p.batch:>5} {p.camera:>10} {p.camera_fps:>5g} {p.frame_skip:>4} "
                     f"{p.npu_fps:>8.1f} {p.limits['VDEC']:>6.1f} {p.limits['VPC']:>6.1f} {p.limits['NPU']:>6.1f} "
                     f"{p.cameras:>7}  {p.bottleneck}")
    return "\n".join(lines)
