"""The host's share of the cascade on the Ascend device, per frame (docs/cascade.md "On the Ascend device"):
the decoded picture arriving as bytes (the copy itself is the SDK's, not measured here), the parents and their
crops planned, each crop cut from the NV12 and letterboxed, and the lot serialised into the tensor package the
second stream receives. Run: `python docs/bench/ascend_crop_cost.py [--size 1920x1080] [--crops 10]`.
"""

import argparse
import sys
import time

import numpy as np

sys.path.insert(0, ".")
from models.spec import ModelSpec  # noqa: E402
from models.cascade import CascadeRule, CropPlan, Decoding, decode  # noqa: E402
from pipeline.devices.base import Stage2Settings  # noqa: E402
from pipeline.devices.cutter import CropPlanner  # noqa: E402
from models.letterbox import letterbox_geometry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--crops", type=int, default=10)
    parser.add_argument("--model", default="pipeline/demo/model")
    parser.add_argument("--stage2", default="pipeline/demo/stage2")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    spec2 = ModelSpec.load(args.stage2)
    rule = CascadeRule((0,), Decoding((0.25, 0.25), 0.45, 100), Decoding((0.25,), 0.45, 100), 32)
    planner = CropPlanner(spec2, Stage2Settings(args.stage2, rule))
    aligned_w = (width + 15) // 16 * 16
    frame = np.random.default_rng(0).integers(0, 256, (height * 3 // 2, aligned_w), dtype=np.uint8)
    data = frame.tobytes()
    side = height // 4 // 2 * 2  # tiles of a quarter of the picture's height, as a string seen from close by
    plans = []
    for i in range(args.crops):
        x1 = (i * side // 2) % (width - side) // 2 * 2
        rect = (x1, 0, x1 + side, side)
        plans.append(CropPlan(rect, 0, letterbox_geometry(side, side, spec2.input_width, spec2.input_height,
                                                          spec2.letterbox.placement)))
    spec1 = ModelSpec.load(args.model)
    rng = np.random.default_rng(1)
    k = spec1.num_candidates
    boxes = (rng.random((k, 4), np.float32) * spec1.input_width).astype(np.float32)
    boxes[:, 2:] = boxes[:, :2] + 20
    scores = (rng.random((k, 2), np.float32) * 0.1).astype(np.float32)
    scores[:40, 0] = 0.9  # a live frame's few dozen candidates above the threshold, before NMS
    geometry = letterbox_geometry(width, height, spec1.input_width, spec1.input_height, spec1.letterbox.placement)
    timings = {"parents (decode + NMS)": 0.0, "picture bytes -> array": 0.0, "cut + letterbox": 0.0,
               "serialise": 0.0}
    for _ in range(args.repeat):
        tp = time.perf_counter()
        decode(boxes, scores, geometry, width, height, rule.stage1)
        t0 = time.perf_counter()
        timings["parents (decode + NMS)"] += t0 - tp
        nv12 = np.frombuffer(data, np.uint8).reshape(height * 3 // 2, aligned_w)
        t1 = time.perf_counter()
        crops = [planner.cut(nv12, plan) for plan in plans]
        t2 = time.perf_counter()
        payload = b"".join(c.tobytes() for c in crops)
        t3 = time.perf_counter()
        timings["picture bytes -> array"] += t1 - t0
        timings["cut + letterbox"] += t2 - t1
        timings["serialise"] += t3 - t2
    print(f"{width}x{height} frame ({len(data) / 1e6:.2f} MB NV12 copied from the device per frame), "
          f"{args.crops} crops of {side}x{side} -> {spec2.input_width}x{spec2.input_height} "
          f"({len(payload) / 1e3:.1f} kB sent back), mean of {args.repeat}:")
    for name, total in timings.items():
        print(f"  {name:24s} {total / args.repeat * 1e3:7.3f} ms")
    print(f"  {'total':24s} {sum(timings.values()) / args.repeat * 1e3:7.3f} ms per frame")


if __name__ == "__main__":
    main()
