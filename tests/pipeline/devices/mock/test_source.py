"""One camera's source thread: what it reports for streams it cannot use."""

from __future__ import annotations

import threading

from pipeline.devices.mock.queues import FrameQueue
from pipeline.devices.mock.source import CameraSource, SourceSpec
from pipeline.types import CameraStats
from tests.support.clips import encode_audio_only


def test_an_audio_only_file_fails_with_no_video_stream(tmp_path):
    audio = encode_audio_only(tmp_path / "recording.mka")
    stats = CameraStats("a")
    source = CameraSource(SourceSpec("a", 0, str(audio), is_rtsp=False, live=False),
                          FrameQueue(4, False, threading.Condition()), stats, threading.Event())
    source.start()
    source.join(30)
    assert stats.state == "failed" and stats.last_error == f"no video stream in {audio}"  # not an IndexError
