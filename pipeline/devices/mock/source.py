"""mxpi_rtspsrc / filesrc + mxpi_videodecoder + mxpi_skipframe of one camera, on one thread.

RTSP is read over TCP with PyAV. The guard behaves like the SDK's: no data for `no_frame_timeout_s` (20 s by
default) or an end of stream on a live camera means reconnect, with exponential backoff and jitter. A file
source (or a camera in file mode) ends at its end of stream. Undecodable packets (a corrupted H.264 stream)
are counted and skipped; the decoder resynchronises at the next key frame.

The decoder takes what the box's takes (pipeline/codecs.py): the codec the graph names (mxpi_videodecoder
`inputVideoFormat`), pictures of 128x128 to 4096x4096. Anything else fails the camera with the reason, checked at
every connection and picture, so a camera that comes back from a reconnect with another codec or size fails
too, and no other camera notices. A live camera keeps being asked at its longest reconnect wait (it may be set
right); a file camera stays failed.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time

import numpy as np

from core.logcount import worth_saying
from pipeline.codecs import DEFAULT_FORMAT, codec_of_format, mismatch_message, picture_size_problem, stream_codec
from pipeline.config import ConfigError, expand_placeholders, placeholder_values, redact_url, scrub
from pipeline.devices.nv12 import frame_to_nv12
from pipeline.devices.mock.queues import FrameQueue
from pipeline.types import CameraStats, FrameInfo

logger = logging.getLogger(__name__)

DECODER_THREADS = 1  # per camera; why: _read_stream


class NoVideoStream(Exception):
    """The stream opened but carries no video (an audio-only file or camera channel)."""


class StreamRefused(Exception):
    """What the box's decoder would refuse: a codec other than the graph's, a picture size out of its range."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    camera_id: str
    channel_id: int
    url: str  # may hold ${VAR} placeholders
    is_rtsp: bool
    live: bool
    frame_skip: int = 0
    max_frames: int | None = None
    loop: bool = False
    rate_fps: float | None = None
    no_frame_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 20.0
    video_format: str = DEFAULT_FORMAT  # the decoder's inputVideoFormat


@dataclasses.dataclass
class DecodedFrame:
    info: FrameInfo
    nv12: np.ndarray


class CameraSource(threading.Thread):
    def __init__(self, spec: SourceSpec, queue: FrameQueue, stats: CameraStats, stop: threading.Event):
        super().__init__(name=f"source-{spec.camera_id}", daemon=True)
        self.spec = spec
        self.queue = queue
        self.stats = stats
        self.stop_event = stop
        self.frame_id = 0
        self.safe_url = redact_url(spec.url)
        self._next_due: float | None = None
        self._decode_started = time.perf_counter()

    # The thread body: connect, decode until the stream ends, reconnect (live) or finish (file).
    def run(self) -> None:
        backoff = self.spec.backoff_initial_s
        last_logged = 0.0
        while not self.stop_event.is_set():
            try:
                got_frames = self._read_stream()
            except ConfigError as exc:  # a missing ${VAR}: retrying cannot help
                self._fail(str(exc))
                return
            except StreamRefused as exc:
                self.stats.errors += 1
                if self.stats.state != "failed" or self.stats.last_error != str(exc):
                    self._fail(str(exc))
                if not self.spec.live:
                    return
                self.stop_event.wait(self.spec.backoff_max_s)
                continue
            except NoVideoStream as exc:  # an audio-only file stays one; a live camera may come back with video
                got_frames = False
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                if not self.spec.live:
                    self._fail(str(exc))
                    return
                logger.warning("camera %s: %s", self.spec.camera_id, exc)
            except Exception as exc:  # PyAV/FFmpeg errors: connection refused, timeout, bad data
                got_frames = False
                self.stats.errors += 1
                # FFmpeg quotes the URL it failed to open: the expanded password must not reach logs or stats.
                self.stats.last_error = scrub(f"{type(exc).__name__}: {exc}", placeholder_values(self.spec.url))
                now = time.monotonic()
                if now - last_logged > 30 or self.stats.reconnects == 0:  # rate-limited
                    logger.warning("camera %s: %s: %s", self.spec.camera_id, self.safe_url, self.stats.last_error)
                    last_logged = now
                if not self.spec.live:
                    self._fail(self.stats.last_error)
                    return
            if self._done():
                break
            if self.spec.loop and got_frames and not self.spec.is_rtsp:
                continue  # a looping file restarts at once, also when it plays a live camera (mode: live)
            if not self.spec.live:
                break
            if got_frames:
                backoff = self.spec.backoff_initial_s
            self.stats.state = "reconnecting"
            self.stats.reconnects += 1
            delay = backoff * random.uniform(0.8, 1.2)
            logger.info("camera %s: stream ended, reconnecting in %.1f s", self.spec.camera_id, delay)
            self.stop_event.wait(delay)
            backoff = min(backoff * 2, self.spec.backoff_max_s)
        if self.stats.state != "failed":
            self.stats.state = "finished"
        logger.info("camera %s: source finished after %d frames", self.spec.camera_id, self.frame_id)

    def _fail(self, message: str) -> None:
        self.stats.state = "failed"
        self.stats.last_error = message
        logger.error("camera %s: %s", self.spec.camera_id, message)

    def _done(self) -> bool:
        return self.stop_event.is_set() or (self.spec.max_frames is not None and self.frame_id >= self.spec.max_frames)

    def _open(self):
        import av

        url = expand_placeholders(self.spec.url, f"camera {self.spec.camera_id}: url")
        if self.spec.is_rtsp:
            return av.open(url, options={"rtsp_transport": "tcp"},
                           timeout=(self.spec.open_timeout_s, self.spec.no_frame_timeout_s))
        return av.open(url)

    def _read_stream(self) -> bool:
        import av

        container = self._open()
        got_frames = False
        try:
            if not container.streams.video:
                raise NoVideoStream(f"no video stream in {self.safe_url}")
            stream = container.streams.video[0]
            found = stream_codec(stream)
            if found != codec_of_format(self.spec.video_format):
                raise StreamRefused(mismatch_message(found, self.spec.video_format))
            # One decoding thread per camera: the cameras already decode in parallel, each on its own thread, and
            # FFmpeg's frame threads cost 28-40% more CPU per frame here (0.48 vs 0.67 ms for a 768x432 H.264
            # frame, docs/performance.md) and hold frames back by a thread count, which a live camera's latency pays.
            stream.thread_count = DECODER_THREADS
            self.stats.state = "running"
            for packet in container.demux(stream):
                if self._done():
                    break
                self._decode_started = time.perf_counter()
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:  # corrupted data: count, skip, keep going
                    self.stats.errors += 1
                    self.stats.last_error = scrub(f"decode: {exc}", placeholder_values(self.spec.url))
                    if worth_saying(self.stats.errors):
                        logger.warning("camera %s: undecodable H.264 data (%d packets so far, skipped): %s",
                                       self.spec.camera_id, self.stats.errors, exc)
                    continue
                for frame in frames:
                    got_frames = True
                    self._emit(frame)
                    if self._done():
                        break
        finally:
            container.close()
        return got_frames

    def _pace(self) -> None:
        """A paced file source delivers one frame every 1 / rate_fps seconds, like a camera."""
        now = time.monotonic()
        if self._next_due is None or now - self._next_due > 1.0:  # start, or fell far behind: no burst
            self._next_due = now
        elif self._next_due > now:
            self.stop_event.wait(self._next_due - now)
        self._next_due += 1.0 / self.spec.rate_fps

    def _emit(self, frame) -> None:
        problem = picture_size_problem(frame.width, frame.height)
        if problem:
            raise StreamRefused(problem)
        if self.spec.rate_fps:
            self._pace()
        frame_id = self.frame_id
        self.frame_id += 1
        self.stats.frames_in += 1
        if self.spec.frame_skip and frame_id % (self.spec.frame_skip + 1):
            self.stats.skipped += 1
            return
        nv12, width, height = frame_to_nv12(frame)
        decode_ms = (time.perf_counter() - self._decode_started) * 1000.0
        info = FrameInfo(self.spec.camera_id, self.spec.channel_id, frame_id,
                         float(frame.time) if frame.time is not None else None, time.time(), time.monotonic(),
                         width, height, decode_ms)
        if self.queue.put(DecodedFrame(info, nv12), self.stop_event):
            self.stats.dropped += 1
            if worth_saying(self.stats.dropped):
                logger.warning("camera %s: model falls behind, %d oldest frames dropped so far",
                               self.spec.camera_id, self.stats.dropped)
