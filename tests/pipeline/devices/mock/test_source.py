"""One camera's source thread: what it reports for streams it cannot use."""

from __future__ import annotations

import threading

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
