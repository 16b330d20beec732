"""CPU time of the daemon's threads per processed frame (docs/performance.md, "The mock's own overhead").

    python docs/bench/thread_cpu.py [seconds] [--stage2 DIR] [--clip FILE]

Four looping file cameras (../shared/videos, or --clip) through the demo model on the mock device, with a
second stage when --stage2 names one; after a 5 s warm-up, each thread's CPU time
(/proc/self/task/<tid>/stat) over the measured window, grouped by thread name.
"""

import collections
import logging
import os
import pathlib
import re
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
logging.disable(logging.WARNING)

from pipeline.config import parse_config  # noqa: E402
from pipeline.daemon import Daemon  # noqa: E402


def cpu_by_thread() -> dict:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main(seconds: float, stage2: str | None = None, clip: str | None = None) -> None:
    clips = [pathlib.Path(clip)] if clip else \
        sorted((ROOT.parent / "shared" / "videos").glob("*.mp4")) or [ROOT / "pipeline/demo/insulators.mp4"]
    config = parse_config({
        "cameras": [{"id": f"cam{i}", "url": str(clips[i % len(clips)]), "loop": True, "mode": "file"}
                    for i in range(4)],
        "model": str(ROOT / "pipeline/demo/model"), "output": {"directory": tempfile.mkdtemp()},
        "batching": {"max_batch": 4, "waiting_time_ms": 40, "in_flight": 2}, "summary_interval_s": 60,
        "http": {"enabled": False},
        **({"stage2": {"model": stage2, "thresholds": {"score": 0.3}}} if stage2 else {})})
    daemon, stop = Daemon(config), threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,), name="daemon-main")
    runner.start()
    time.sleep(5)
    before, frames_before, started = cpu_by_thread(), sum(s.processed for s in daemon.device.camera_stats()), \
        time.time()
    time.sleep(seconds)
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    after, frames = cpu_by_thread(), sum(s.processed for s in daemon.device.camera_stats()) - frames_before
    elapsed = time.time() - started
    stop.set()
    runner.join()
    groups: dict = collections.defaultdict(float)
    for tid, cpu in after.items():
        name = re.sub(r"cam\d+", "camN", re.sub(r"_\d+$", "_N", names.get(tid, "other (runtime, native)")))
        groups[name] += cpu - before.get(tid, 0.0)
    total = sum(groups.values())
    print(f"{frames / elapsed:.1f} frames/s over {elapsed:.1f} s, {total / elapsed:.2f} cores busy")
    for name, cpu in sorted(groups.items(), key=lambda item: -item[1]):
        if cpu > 0.05:
            print(f"{name:24s} {cpu / frames * 1000:6.3f} ms/frame  {cpu / total * 100:5.1f}%")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("seconds", nargs="?", type=float, default=15.0)
    parser.add_argument("--stage2")
    parser.add_argument("--clip")
    args = parser.parse_args()
    main(args.seconds, args.stage2, args.clip)
