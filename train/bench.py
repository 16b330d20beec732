"""Training throughput and peak memory (`inspector train-bench`): each case runs in its own process so its
peak resident memory is its own; cases run one after the other on the same machine, side by side in one run.
Random data of the right shapes: throughput does not depend on the pictures."""

from __future__ import annotations

import json
import subprocess
import sys

CASE = r"""
import json, resource, sys, time
import numpy as np
from models import msenv
import mindspore as ms
from mindspore import nn
from models.darknet_cfg import parse_cfg
from models.network import DarknetYolo
from models.spec import ModelSpec
from train.loss import YoloLoss
from train.targets import build_targets
cfg_name, size, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ms.set_context(mode=ms.GRAPH_MODE)
cfg = parse_cfg(cfg_name, classes=2, height=size, width=size)
spec = ModelSpec.from_cfg(cfg, ["a", "b"])
net = DarknetYolo(cfg)
step = nn.TrainOneStepCell(YoloLoss(net), nn.Momentum(net.trainable_params(), 0.001, 0.9))
step.set_train()
rng = np.random.default_rng(0)
images = ms.Tensor(rng.random((batch, 3, size, size), dtype=np.float32))
boxes = np.array([[40, 60, 200, 180], [10, 10, 90, 300]], np.float32)
targets, gt = build_targets(boxes, np.array([0, 1]), spec)
gts = ms.Tensor(np.stack([gt] * batch))
heads = [ms.Tensor(np.stack([t] * batch)) for t in targets]
start = time.perf_counter(); step(images, gts, *heads); compile_s = time.perf_counter() - start
start = time.perf_counter()
for _ in range(steps):
    step(images, gts, *heads).asnumpy()
seconds = time.perf_counter() - start
print(json.dumps({"network": cfg_name, "size": size, "batch": batch, "images_per_s": batch * steps / seconds,
                  "first_step_s": compile_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(cfgs: list[str], size: int, batch: int, steps: int) -> list[dict]:
    rows = []
    for cfg in cfgs:
        result = subprocess.run([sys.executable, "-c", CASE, cfg, str(size), str(batch), str(steps)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{cfg}: {result.stderr[-2000:]}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return rows


def format_rows(rows: list[dict]) -> str:
    header = f"{'network':<18} {'size':>4} {'batch':>5} {'images/s':>9} {'first step s':>12} {'peak RSS MB':>11}"
    lines = [header, "-" * len(header)]
    lines += [f"{r['network']:<18} {r['size']:>4} {r['batch']:>5} {r['images_per_s']:>9.2f} {r['first_step_s']:>12.1f} "
              f"{r['peak_rss_mb']:>11.0f}" for r in rows]
    return "\n".join(lines)
