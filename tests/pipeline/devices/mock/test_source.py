"""One camera's source thread: what it reports for streams it cannot use."""

from __future__ import annotations

import threading

import pytest

from pipeline.devices.mock.queues import FrameQueue
from pipeline.devices.mock.source import CameraSource, SourceSpec
from pipeline.types import CameraStats
from tests.support.clips import encode_audio_only, encode_clip


def test_an_audio_only_file_fails_with_no_video_stream(tmp_path):
    audio = encode_audio_only(tmp_path / "recording.mka")
    stats = CameraStats("a")
    source = CameraSource(SourceSpec("a", 0, str(audio), is_rtsp=False, live=False),
                          FrameQueue(4, False, threading.Condition()), stats, threading.Event())
    source.start()
    source.join(30)
    assert stats.state == "failed" and stats.last_error == f"no video stream in {audio}"  # not an IndexError


def run_source(url: str, video_format: str) -> CameraStats:
    stats = CameraStats("a")
    frames = FrameQueue(200, False, threading.Condition())
    source = CameraSource(SourceSpec("a", 0, url, is_rtsp=False, live=False, video_format=video_format),
                          frames, stats, threading.Event())
    source.start()
    source.join(60)
    return stats


def test_the_decoder_takes_only_the_codec_the_graph_names(tmp_path):
    """The box's VDEC is set up from inputVideoFormat (pipeline/codecs.py): another codec decodes nothing."""
    hevc = encode_clip(tmp_path / "hevc.mp4", frames=10, width=320, height=180, codec="libx265")
    refused = run_source(str(hevc), "H264")
    assert refused.state == "failed" and refused.frames_in == 0
    assert refused.last_error.startswith("the camera streams H.265, the decoder is set up for H.264 (inputVideoFormat "
                                         "H264): set the camera's codec to h265")
    taken = run_source(str(hevc), "H265")
    assert taken.state == "finished" and taken.frames_in == 10
    avc = encode_clip(tmp_path / "avc.mp4", frames=10, width=320, height=180)
    assert run_source(str(avc), "H265").state == "failed" and run_source(str(avc), "H264").frames_in == 10


def encode_sized(path, width: int, height: int, pix_fmt: str = "yuv420p"):
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 90, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("width, height", [(2, 2), (16, 16), (4100, 130), (130, 4100)])
def test_a_picture_the_box_cannot_decode_fails_the_camera_with_its_size(tmp_path, width, height):
    stats = run_source(str(encode_sized(tmp_path / "c.mp4", width, height)), "H264")
    assert stats.state == "failed" and stats.frames_in == 0
    assert stats.last_error.startswith(f"the camera's pictures are {width}x{height}; the Ascend 310's video decoder "
                                       f"takes 128x128 to 4096x4096")


def test_odd_sizes_of_any_pixel_format_are_taken(tmp_path):
    """4:4:4 at an odd size (129x131) used to fail with "cannot reshape": it is converted like any other."""
    from pipeline.devices.nv12 import frame_to_nv12
    import av

    clip = encode_sized(tmp_path / "c.mp4", 129, 131, "yuv444p")
    assert run_source(str(clip), "H264").frames_in == 5
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == "yuv444p"
    buffer, width, height = frame_to_nv12(frame)
    assert (width, height, buffer.shape) == (128, 130, (195, 128))
