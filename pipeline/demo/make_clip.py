"""Make the bundled demo clip from a few CPLID insulator photos (run once; the clip is committed).

    python -m pipeline.demo.make_clip ../shared/datasets/cplid pipeline/demo/insulators.mp4

The data set's terms allow at most 8 of its photos in the demo clip, credited in the README (see
../shared/datasets/cplid/PROVENANCE.md). Each photo is shown for two seconds with a slow zoom, as a PTZ
camera would, at 10 fps, H.264 (libx264, yuv420p, BT.601 limited range like camera streams).
"""

from __future__ import annotations

import pathlib
import sys

import cv2
import numpy as np

# From the demo model's held-out split (train/configs/demo-insulator.yaml: val_fraction 0.15, split_seed 0), so
# the bundled model is shown pictures it was not trained on.
PHOTOS = ("Normal_Insulators/images/3559.jpg", "Normal_Insulators/images/0680.jpg",
          "Normal_Insulators/images/0942.jpg", "Normal_Insulators/images/0178.jpg",
          "Normal_Insulators/images/0748.jpg", "Defective_Insulators/images/133.jpg",
          "Defective_Insulators/images/124.jpg", "Defective_Insulators/images/164.jpg")
WIDTH, HEIGHT, FPS, SECONDS_EACH = 576, 432, 10, 2


def make_clip(dataset: pathlib.Path, out: pathlib.Path) -> int:
    import av

    out.parent.mkdir(parents=True, exist_ok=True)
    frames = 0
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "26", "preset": "slow", "g": str(FPS * SECONDS_EACH)}
        for name in PHOTOS[:8]:
            image = cv2.imread(str(dataset / name))
            if image is None:
                raise SystemExit(f"{dataset / name}: cannot read")
            image = cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
            for i in range(FPS * SECONDS_EACH):
                zoom = 1.0 + 0.08 * i / (FPS * SECONDS_EACH)
                matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 0.0, zoom)
                frame = cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                frames += 1
        for packet in stream.encode():
            container.mux(packet)
    return frames


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    count = make_clip(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {count} frames")
