"""Camera clips for tests: the real ones in ../shared/videos when present, else H.264 (or H.265) encoded here."""

from __future__ import annotations

import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED_VIDEOS = REPO.parent / "shared" / "videos"
DEMO_CLIP = REPO / "pipeline" / "demo" / "insulators.mp4"


def encode_clip(path: pathlib.Path, frames: int = 120, width: int = 640, height: int = 360, fps: int = 25,
                seed: int = 0, codec: str = "libx264") -> pathlib.Path:
    """A real H.264 (libx264) or H.265 (codec="libx265") clip of moving coloured rectangles."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    shapes = [(rng.integers(0, width), rng.integers(0, height), rng.integers(20, 120), rng.integers(20, 120),
               tuple(int(c) for c in rng.integers(0, 256, 3)), rng.integers(-6, 7, 2)) for _ in range(6)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(fps), "preset": "veryfast"} if codec == "libx264" else \
            {"preset": "ultrafast", "x265-params": f"keyint={fps}:log-level=error"}
        for i in range(frames):
            image = np.full((height, width, 3), 60, np.uint8)
            for x, y, w, h, colour, (dx, dy) in shapes:
                cx, cy = int(x + dx * i) % width, int(y + dy * i) % height
                cv2.rectangle(image, (cx, cy), (cx + int(w), cy + int(h)), colour, -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def camera_clips(tmp_dir: pathlib.Path) -> list[pathlib.Path]:
    """Three clips: two real camera clips (or encoded stand-ins) and the bundled demo clip."""
    real = [SHARED_VIDEOS / "car-detection.mp4", SHARED_VIDEOS / "bottle-detection.mp4"]
    clips = [p if p.is_file() else encode_clip(tmp_dir / f"clip{i}.mp4", seed=i) for i, p in enumerate(real)]
    return clips + [DEMO_CLIP]


def encode_audio_only(path: pathlib.Path, seconds: float = 1.0) -> pathlib.Path:
    """A real file with one audio stream and no video (what an operator may point a camera at by mistake)."""
    import av

    rate = 16000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mp2", rate=rate)
        stream.layout = "mono"
        for start in range(0, int(rate * seconds), 1152):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
