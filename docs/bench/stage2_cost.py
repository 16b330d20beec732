"""Where the cascade's CPU goes on the mock device, per frame (docs/cascade.md, "What bounds the ratio"): the
first model's batch (letterbox, AIPP, inference) against the second stage's parts: planning (the first stage's
outputs decoded, the crops placed), cutting with the crops' AIPP, and the second model's inference. CPU time of
this process on one thread, the demo clip's first frames in batches of four, as the daemon's workers run them.

    python docs/bench/stage2_cost.py [--frames 64] [--repeat 3]
"""

import argparse
import collections
import sys
import time
import types

sys.path.insert(0, ".")
import av  # noqa: E402

from models.aipp import AippConfig  # noqa: E402
from models.runtime import open_session  # noqa: E402
from models.spec import ModelSpec  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.devices.mock.infer import prepare_batch  # noqa: E402
from pipeline.devices.mock.stage2 import CropInference  # noqa: E402
from pipeline.devices.nv12 import dvpp_background, frame_to_nv12  # noqa: E402
from pipeline.stage2 import device_stage2  # noqa: E402

BATCH = 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="pipeline/demo/demo.yaml")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = load_config(args.config)
    spec1, spec2 = ModelSpec.load(config.model), ModelSpec.load(config.stage2.model)
    frames = []
    with av.open(str(config.cameras[0].url)) as container:
        for frame in container.decode(video=0):
            nv12, width, height = frame_to_nv12(frame)
            frames.append(types.SimpleNamespace(nv12=nv12, info=types.SimpleNamespace(width=width, height=height)))
            if len(frames) == args.frames:
                break
    batches = [frames[i:i + BATCH] for i in range(0, len(frames) - BATCH + 1, BATCH)]
    count = len(batches) * BATCH
    spent: collections.Counter = collections.Counter()

    def timed(name, function):
        def wrapper(*a, **k):
            started = time.process_time()
            try:
                return function(*a, **k)
            finally:
                spent[name] += time.process_time() - started
        return wrapper

    session1 = open_session(f"{config.model}/{spec1.model_file}", None, 1)
    run1 = timed("stage 1: inference", session1.run)
    aipp1 = AippConfig.for_model(spec1)
    pad = spec1.letterbox.pad_value
    pad_y, pad_uv, _ = dvpp_background(pad, pad, pad)

    def stage1(batch):
        tensor, geometries = prepare_batch(batch, BATCH, spec1, aipp1, pad_y, pad_uv)
        return geometries, run1(tensor)

    cascade = CropInference(spec1, spec2, f"{config.stage2.model}/{spec2.model_file}",
                            device_stage2(config, spec1, spec2), None, 1, 1)
    session2 = cascade._sessions.get()
    session2.run = timed("stage 2: inference", session2.run)
    cascade._sessions.put(session2)
    cascade._cut_stacked = timed("stage 2: cut, letterbox, AIPP", cascade._cut_stacked)
    cascade.planner.plan = timed("stage 2: decode stage 1, plan", cascade.planner.plan)
    for repeat in range(args.repeat):
        spent.clear()
        started = time.process_time()
        outputs = [stage1(batch) for batch in batches]
        spent["stage 1: letterbox, AIPP"] = time.process_time() - started - spent["stage 1: inference"]
        started = time.process_time()
        crops = 0
        for batch, (geometries, tensors) in zip(batches, outputs):
            crops += sum(len(c) for c in cascade.run(batch, geometries, tensors)[1])
        spent["stage 2: the rest"] = time.process_time() - started - sum(
            v for k, v in spent.items() if k.startswith("stage 2"))
        print(f"run {repeat + 1}: {crops / count:.1f} crops/frame; ms/frame: " + ", ".join(
            f"{name} {value / count * 1000:.2f}" for name, value in sorted(spent.items())))


if __name__ == "__main__":
    main()
