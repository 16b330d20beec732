"""`inspector bench`: throughput, efficiency, latency and memory of the daemon, measured side by side in one run.

Every figure comes from the same process, model and clips, one measurement after the other:
- decode: the mock decoder alone (PyAV + NV12 conversion), per camera and with all cameras in parallel;
- inference: the model alone in the daemon's arrangement (`in_flight` sessions side by side, each with
  cores / in_flight threads), random input, per batch size;
- daemon: end to end with 1, 2, 4, 8 file cameras (lossless, looping), processed frames per second;
- efficiency: daemon fps / inference-only fps at the daemon's batch size and thread settings;
- naive: the loop most users write first: per camera in turn, OpenCV VideoCapture -> letterbox -> one
  inference on all cores -> NMS;
- latency: cameras paced like live ones at half, full and double the sustainable rate, from decode to the
  JSON line (p50, p99), with the drops;
- memory: resident set size after warm-up and after a soak at full load.
"""

from __future__ import annotations

import fractions
import json
import os
import pathlib
import tempfile
import threading
import time

import numpy as np

from models.spec import ModelSpec


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def decode_only(clips: list[pathlib.Path], frames: int = 300) -> dict:
    import av

    from pipeline.devices.nv12 import frame_to_nv12
    from pipeline.devices.mock.source import DECODER_THREADS

    def decode(clip: pathlib.Path, out: list) -> None:
        count, start = 0, time.perf_counter()
        while count < frames:
            with av.open(str(clip)) as container:
                container.streams.video[0].thread_count = DECODER_THREADS  # as the mock device decodes
                for frame in container.decode(video=0):
                    frame_to_nv12(frame)
                    count += 1
                    if count >= frames:
                        break
        out.append(count / (time.perf_counter() - start))

    per_camera = {}
    for clip in clips:
        result: list = []
        decode(clip, result)
        per_camera[clip.name] = result[0]
    results: list = []
    threads = [threading.Thread(target=decode, args=(clip, results)) for clip in clips]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = len(clips) * frames / (time.perf_counter() - start)
    return {"per_camera_fps": per_camera, "parallel_total_fps": total, "cameras": len(clips)}


def synthetic_model(cfg_name: str, size: int, out: pathlib.Path) -> pathlib.Path:
    """An exported model of `cfg_name` at `size` with deterministic random weights (for speed figures only)."""
    from models.export import export_model
    from models.darknet_cfg import parse_cfg
    from models.testing import random_state
    from models.weights import write_darknet_weights

    cfg = parse_cfg(cfg_name, classes=2)
    weights = out / "random.weights"
    write_darknet_weights(weights, cfg, random_state(cfg, 0))
    export_model(cfg_name, weights, ["insulator", "defect"], "onnx", out / "model", size=(size, size))
    return out / "model"


def rescale_clip(source: pathlib.Path, out: pathlib.Path, width: int, height: int, seconds: float = 20.0) -> pathlib.Path:
    """The first `seconds` of `source` re-encoded as H.264 at width x height (yuv420p, GOP 25), as a camera
    at that resolution would send it."""
    import av

    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        rate = src.streams.video[0].average_rate or 25
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "25", "preset": "veryfast", "crf": "23"}
        for index, frame in enumerate(src.decode(video=0)):
            if index >= seconds * rate:
                break
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = index, fractions.Fraction(1, 1) / rate
            for packet in stream.encode(scaled):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


def inference_only(model_file: pathlib.Path, spec: ModelSpec, batches: list[int], in_flight: int,
                   seconds: float, threads: int = 0) -> dict:
    from models.runtime import open_session

    threads = threads or max(1, (os.cpu_count() or 1) // in_flight)
    sessions = [open_session(model_file, None, threads) for _ in range(in_flight)]
    results = {}
    for batch in batches:
        images = np.random.default_rng(0).random((batch, 3, spec.input_height, spec.input_width), dtype=np.float32)
        for session in sessions:
            session.run(images)  # warm-up
        counts = [0] * in_flight
        deadline = time.perf_counter() + seconds

        def work(index: int) -> None:
            while time.perf_counter() < deadline:
                sessions[index].run(images)
                counts[index] += batch

        workers = [threading.Thread(target=work, args=(i,)) for i in range(in_flight)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results[batch] = sum(counts) / (time.perf_counter() - start)
    return {"images_per_s": results, "in_flight": in_flight, "threads_per_session": threads}


def run_daemon_for(config_dict: dict, seconds: float, warmup: float = 5.0) -> dict:
    from pipeline.config import ConfigError, parse_config
    from pipeline.daemon import Daemon

    config = parse_config(config_dict)
    daemon = Daemon(config)  # the checks of `run` (models, classes, files) before anything is measured
    stop = threading.Event()
    failures: list = []

    def run() -> None:
        try:
            daemon.run(stop)
        except Exception as exc:  # surfaced below: a figure of a daemon that died is no figure
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(warmup)
    before = sum(s.processed for s in daemon.device.camera_stats())
    rss_start = rss_mb()
    start = time.perf_counter()
    time.sleep(seconds)
    after = sum(s.processed for s in daemon.device.camera_stats())
    elapsed = time.perf_counter() - start
    rss_end = rss_mb()
    stats = daemon.device.camera_stats()
    stop.set()
    thread.join()
    if failures:
        raise failures[0]
    if after == before:
        raise ConfigError(f"bench: the daemon processed no frame in {seconds:g} s (cameras: "
                          f"{', '.join(f'{s.camera_id} {s.state}: {s.last_error}' for s in stats)})")
    return {"processed_fps": (after - before) / elapsed, "dropped": sum(s.dropped for s in stats),
            "rss_start_mb": rss_start, "rss_end_mb": rss_end,
            "output": str(pathlib.Path(config.output.directory) / "detections.jsonl"),
            "batches": len(daemon.device.batches) if hasattr(daemon.device, "batches") else None}


def naive(model_file: pathlib.Path, spec: ModelSpec, clips: list[pathlib.Path], seconds: float,
          score_threshold: float = 0.3) -> dict:
    """Per camera in turn: VideoCapture, letterbox, one inference with all cores, NMS."""
    import cv2

    from models.runtime import open_session
    from models.detect import detect
    from models.letterbox import preprocess_bgr as preprocess

    session = open_session(model_file)
    captures = [cv2.VideoCapture(str(c)) for c in clips]
    thresholds = np.full(spec.num_classes, score_threshold, np.float32)
    processed, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for index, capture in enumerate(captures):
            ok, frame = capture.read()
            if not ok:
                capture.release()
                captures[index] = capture = cv2.VideoCapture(str(clips[index]))
                ok, frame = capture.read()
            tensor, geometry = preprocess(frame, spec)
            boxes, scores = session.run(tensor[None])
            kept, _, _ = detect(boxes[0], scores[0], thresholds, 0.45, 100)
            geometry.to_camera(kept, frame.shape[1], frame.shape[0])
            processed += 1
    return {"processed_fps": processed / (time.perf_counter() - start)}


def latencies(path: str) -> dict:
    values = [json.loads(line)["latency_ms"] for line in pathlib.Path(path).read_text().splitlines()]
    values = values[len(values) // 5:]  # the first fifth is warm-up
    if not values:
        return {"p50_ms": None, "p99_ms": None, "lines": 0}
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "lines": len(values)}


def run_bench(model_dir: pathlib.Path, clips: list[pathlib.Path], cameras: list[int], batch: int, in_flight: int,
              seconds: float, soak_seconds: float, progress=print,
              arrangements: list[tuple[int, int]] | None = None, score_threshold: float = 0.3) -> dict:
    spec = ModelSpec.load(model_dir)
    name = spec.cpu_model_name
    model_file = model_dir / name
    report: dict = {"model": str(model_dir), "architecture": spec.architecture, "score_threshold": score_threshold,
                    "input": [spec.input_height, spec.input_width], "batch": batch, "in_flight": in_flight,
                    "clips": [c.name for c in clips], "machine": {"cpus": os.cpu_count()}}
    progress("decode only ...")
    report["decode"] = decode_only(clips)
    progress("inference only ...")
    gears = [g for g in spec.batch_gears if g <= batch]
    report["inference"] = inference_only(model_file, spec, gears, in_flight, seconds)
    infer_fps = report["inference"]["images_per_s"][batch]
    report["arrangements"] = {}
    for sessions, threads in arrangements or []:
        progress(f"inference only, {sessions} session(s) x {threads} thread(s) ...")
        report["arrangements"][f"{sessions}x{threads}"] = inference_only(
            model_file, spec, [batch], sessions, seconds, threads)["images_per_s"][batch]
    with tempfile.TemporaryDirectory(prefix="inspector-bench-") as tmp:
        def config(n: int, out: str, rate: float | None = None, mode: str = "file") -> dict:
            return {"cameras": [{"id": f"cam{i}", "url": str(clips[i % len(clips)]), "loop": True, "mode": mode,
                                 **({"rate_fps": rate} if rate else {})} for i in range(n)],
                    "model": str(model_dir), "output": {"directory": f"{tmp}/{out}"},
                    "batching": {"max_batch": batch, "waiting_time_ms": 40, "in_flight": in_flight},
                    "thresholds": {"score": score_threshold}, "summary_interval_s": 60}

        report["daemon"] = {}
        for n in cameras:
            progress(f"daemon with {n} camera(s) ...")
            result = run_daemon_for(config(n, f"e2e{n}"), seconds)
            result["efficiency"] = result["processed_fps"] / infer_fps
            report["daemon"][n] = result
        progress("naive baseline ...")
        report["naive"] = {n: naive(model_file, spec, [clips[i % len(clips)] for i in range(n)], seconds,
                                    score_threshold)
                           for n in cameras}
        sustainable = max(r["processed_fps"] for r in report["daemon"].values())
        n = max(cameras) if max(cameras) <= 4 else 4
        report["latency"] = {}
        for label, factor in (("half", 0.5), ("full", 1.0), ("double", 2.0)):
            progress(f"latency at {label} load ...")
            rate = sustainable * factor / n
            result = run_daemon_for(config(n, f"lat-{label}", rate, "live"), seconds)
            report["latency"][label] = {"camera_fps": rate, "cameras": n, "dropped": result["dropped"],
                                        **latencies(result["output"])}
        progress(f"memory soak, {soak_seconds:.0f} s at full load ...")
        # In a fresh process: the runtime arenas of the phases before must not count (or shrink) here.
        import concurrent.futures
        import multiprocessing

        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            soak = pool.submit(run_daemon_for, config(n, "soak", sustainable / n, "live"), soak_seconds,
                               10.0).result()
        report["memory"] = {"rss_after_warmup_mb": soak["rss_start_mb"], "rss_after_soak_mb": soak["rss_end_mb"],
                            "growth": soak["rss_end_mb"] / soak["rss_start_mb"] - 1.0, "soak_seconds": soak_seconds}
    report["speedup_vs_naive"] = {n: report["daemon"][n]["processed_fps"] / report["naive"][n]["processed_fps"]
                                  for n in cameras}
    return report


def run_cascade_bench(model_dir: pathlib.Path, stage2_dir: pathlib.Path, clips: list[pathlib.Path],
                      cameras: list[int], batch: int, in_flight: int, seconds: float, stage2_score: float = 0.3,
                      progress=print) -> dict:
    """The daemon's frames/s with and without the second stage, one after the other on the same clips
    (the cascade should keep at least 0.7 of the single-stage rate), and the crops it ran per frame."""
    report: dict = {"model": str(model_dir), "stage2": str(stage2_dir), "clips": [c.name for c in clips],
                    "batch": batch, "in_flight": in_flight, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="inspector-bench-") as tmp:
        for n in cameras:
            case = {}
            for label, stage2 in (("single", None), ("cascade", {"model": str(stage2_dir),
                                                                 "thresholds": {"score": stage2_score}})):
                progress(f"daemon, {label} stage, {n} camera(s) ...")
                config = {"cameras": [{"id": f"cam{i}", "url": str(clips[i % len(clips)]), "loop": True,
                                       "mode": "file"} for i in range(n)],
                          "model": str(model_dir), "output": {"directory": f"{tmp}/{label}{n}"},
                          "batching": {"max_batch": batch, "waiting_time_ms": 40, "in_flight": in_flight},
                          "summary_interval_s": 60, **({"stage2": stage2} if stage2 else {})}
                result = run_daemon_for(config, seconds)
                lines = [json.loads(line) for line in pathlib.Path(result["output"]).read_text().splitlines()]
                result["children_per_frame"] = (sum(1 for line in lines for d in line["detections"] if "parent" in d)
                                                / max(1, len(lines)))
                case[label] = result
            case["ratio"] = case["cascade"]["processed_fps"] / case["single"]["processed_fps"]
            report["cases"][n] = case
    return report


def format_cascade_report(report: dict) -> str:
    lines = [f"cascade {report['model']} -> {report['stage2']}, clips {', '.join(report['clips'])}",
             f"{'cameras':>7} {'single fps':>10} {'cascade fps':>11} {'ratio':>6} {'children/frame':>14}"]
    for n, case in report["cases"].items():
        lines.append(f"{n:>7} {case['single']['processed_fps']:>10.1f} {case['cascade']['processed_fps']:>11.1f} "
                     f"{case['ratio']:>6.2f} {case['cascade']['children_per_frame']:>14.2f}")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    lines = [f"model {report['architecture']} {report['input'][0]}x{report['input'][1]}, batch {report['batch']}, "
             f"in flight {report['in_flight']}, {report['machine']['cpus']} CPUs",
             f"decode only: {', '.join(f'{k} {v:.0f} fps' for k, v in report['decode']['per_camera_fps'].items())};"
             f" {report['decode']['cameras']} in parallel {report['decode']['parallel_total_fps']:.0f} fps total",
             "inference only: " + ", ".join(f"batch {b}: {v:.1f} img/s"
                                             for b, v in report["inference"]["images_per_s"].items()),
             *([("arrangements at batch %d (sessions x threads): " % report["batch"]) + ", ".join(
                 f"{k}: {v:.1f} img/s" for k, v in report["arrangements"].items())] if report.get("arrangements")
               else []),
             "", f"{'cameras':>7} {'daemon fps':>10} {'efficiency':>10} {'naive fps':>9} {'speed-up':>8}"]
    for n, result in report["daemon"].items():
        lines.append(f"{n:>7} {result['processed_fps']:>10.1f} {result['efficiency']:>10.2f} "
                     f"{report['naive'][n]['processed_fps']:>9.1f} {report['speedup_vs_naive'][n]:>8.2f}")
    lines += ["", f"{'load':>7} {'camera fps':>10} {'p50 ms':>8} {'p99 ms':>8} {'dropped':>8}"]
    for label, result in report["latency"].items():
        lines.append(f"{label:>7} {result['camera_fps']:>10.1f} {result['p50_ms'] or 0:>8.0f} "
                     f"{result['p99_ms'] or 0:>8.0f} {result['dropped']:>8}")
    memory = report["memory"]
    lines.append(f"\nmemory: {memory['rss_after_warmup_mb']:.0f} MB after warm-up, {memory['rss_after_soak_mb']:.0f} MB "
                 f"after {memory['soak_seconds']:.0f} s ({memory['growth'] * 100:+.1f}%)")
    return "\n".join(lines)


def plot_report(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cameras = list(report["daemon"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(cameras, [report["daemon"][n]["processed_fps"] for n in cameras], "o-", label="daemon (mock device)")
    ax.plot(cameras, [report["naive"][n]["processed_fps"] for n in cameras], "s--", label="naive loop")
    ax.axhline(report["inference"]["images_per_s"][report["batch"]], color="grey", linestyle=":",
               label=f"inference only, batch {report['batch']}")
    ax.set_xlabel("cameras")
    ax.set_ylabel("processed frames / s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(cameras, [str(c) for c in cameras])
    ax.legend()
    ax.set_title(f"{report['architecture']} {report['input'][0]}, {report['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
