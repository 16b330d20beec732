"""Forward-latency benchmark of the exported model per CPU runtime (`inspector model bench`).

Every case runs in this one process, one after the other, so the runtimes are compared side by side under
the same machine load. Random deterministic weights: latency does not depend on the values.
"""

from __future__ import annotations

import pathlib
import statistics
import tempfile
import time
from typing import IO

import numpy as np

RUNTIME_FORMATS = {"onnxruntime": "onnx", "mindspore": "mindir"}


def bench_runtimes(cfgs: list[str], sizes: tuple[int, ...], batches: tuple[int, ...], runtimes: list[str],
                   repeat: int = 5, threads: int = 0, progress: IO[str] | None = None) -> list[dict]:
    from models.export import export_model
    from models.darknet_cfg import parse_cfg
    from models.errors import ModelError
    from models.runtime import open_session
    from models.testing import random_state
    from models.weights import write_darknet_weights

    unknown = [r for r in runtimes if r not in RUNTIME_FORMATS]
    if unknown:
        raise ModelError(f"runtimes {unknown} are not in the runtime registry (valid: {', '.join(RUNTIME_FORMATS)})")
    rows = []
    with tempfile.TemporaryDirectory(prefix="inspector-bench-") as tmp:
        for cfg_name in cfgs:
            for size in sizes:
                cfg = parse_cfg(cfg_name, classes=2, height=size, width=size)
                weights = pathlib.Path(tmp) / f"{cfg.name}-{size}.weights"
                write_darknet_weights(weights, cfg, random_state(cfg, 0))
                for runtime in runtimes:
                    out = pathlib.Path(tmp) / f"{cfg.name}-{size}-{runtime}"
                    model = export_model(cfg_name, weights, ["a", "b"], RUNTIME_FORMATS[runtime], out,
                                         size=(size, size)).model_file
                    session = open_session(model, runtime, threads)
                    for batch in batches:
                        images = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
                        session.run(images)  # warm-up: first-run allocations and graph compilation
                        times = []
                        for _ in range(repeat):
                            start = time.perf_counter()
                            session.run(images)
                            times.append(time.perf_counter() - start)
                        row = {"network": cfg.name, "size": size, "batch": batch, "runtime": runtime,
                               "median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times),
                               "per_image_ms": 1000 * statistics.median(times) / batch,
                               "images_per_s": batch / statistics.median(times), "repeat": repeat}
                        rows.append(row)
                        if progress:
                            print(f"{cfg.name} {size} batch {batch} {runtime}: {row['median_ms']:.1f} ms",
                                  file=progress, flush=True)
                    del session
    return rows


def format_table(rows: list[dict]) -> str:
    header = f"{'network':<12} {'size':>4} {'batch':>5} {'runtime':<12} {'median ms':>10} {'ms/image':>9} {'img/s':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['network']:<12} {r['size']:>4} {r['batch']:>5} {r['runtime']:<12} "
                     f"{r['median_ms']:>10.1f} {r['per_image_ms']:>9.1f} {r['images_per_s']:>7.2f}")
    # Side-by-side ratio where both runtimes ran the same case.
    by_case: dict[tuple, dict[str, float]] = {}
    for r in rows:
        by_case.setdefault((r["network"], r["size"], r["batch"]), {})[r["runtime"]] = r["median_ms"]
    ratios = [f"{n} {s} b{b}: mindspore/onnxruntime = {t['mindspore'] / t['onnxruntime']:.2f}"
              for (n, s, b), t in by_case.items() if {"mindspore", "onnxruntime"} <= set(t)]
    if ratios:
        lines += ["", "latency ratio (higher: ONNX Runtime faster)"] + ratios
    return "\n".join(lines)
