"""What the box's video decoder takes (a camera's codec and picture size), and asking a camera its codec.

The 310's VDEC decodes H.264 and H.265 only (plugins.md "mxpi_videodecoder": H264 bp/mp/hp, H265 8/10 bit,
level 5.1). How mxpi_videodecoder learns which one depends on the release:
- the mxVision releases that run on 310 boxes set the decoder up from the graph's `inputVideoFormat` (default
  H264), which "must match the stream" (plugins.md);
- the 7.3 SDK (Ascend/VisionSDK f156edc, MxpiVideoDecoder.cpp Process / SetDvppVideoFormat) takes the FIRST
  frame's format from mxpi_rtspsrc and keeps it for the element's life (`isInitVdec_`).
Either way a camera whose codec differs from the graph's, or changes after a reconnect, decodes nothing. So each
camera's codec is named in the graph: `codec: h264 | h265` in the config, or `auto`, resolved here by asking
the camera (an RTSP DESCRIBE through PyAV: the SDP names the codec) or reading the file. `render` refuses an
`auto` it could not resolve; `run` assumes the plugin's default (H264) for it and says so.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Dict, List, Optional, Sequence

from core.errors import ConfigError
from core.urls import expand_placeholders, placeholder_values, redact_url, scrub

CODECS = ("h264", "h265")
VIDEO_FORMATS = {"h264": "H264", "h265": "H265"}  # mxpi_videodecoder inputVideoFormat
DEFAULT_FORMAT = "H264"  # the plugin's default (MxpiVideoDecoder.cpp DefineProperties)
FFMPEG_NAMES = {"h264": "h264", "hevc": "h265"}  # FFmpeg's codec name -> ours
PROBE_TIMEOUT_S = 5.0
# The VDEC's input pictures (plugins.md "mxpi_videodecoder": 128 x 128 to 4096 x 4096).
PICTURE_MIN, PICTURE_MAX = 128, 4096


def picture_size_problem(width: int, height: int) -> Optional[str]:
    """Why the box's decoder cannot take a picture of this size, or None: the one check of a camera's picture
    size (the mock device refuses what the box would, before any work is done on it)."""
    if PICTURE_MIN <= width <= PICTURE_MAX and PICTURE_MIN <= height <= PICTURE_MAX:
        return None
    return (f"the camera's pictures are {width}x{height}; the Ascend 310's video decoder takes {PICTURE_MIN}x"
            f"{PICTURE_MIN} to {PICTURE_MAX}x{PICTURE_MAX}: set the camera's stream to a size in that range")


def video_format(codec: str) -> str:
    """The decoder's inputVideoFormat for a camera's codec (`auto` unresolved: the plugin's default)."""
    return VIDEO_FORMATS.get(codec, DEFAULT_FORMAT)


def codec_of_format(video_format_value: str) -> Optional[str]:
    return next((codec for codec, value in VIDEO_FORMATS.items() if value == video_format_value), None)


def describe(codec: str) -> str:
    """H.264 / H.265 as people write them; other codecs by FFmpeg's name."""
    return {"h264": "H.264", "h265": "H.265"}.get(codec, codec)


def stream_codec(stream) -> str:
    """Our name for a PyAV video stream's codec: h264, h265, or FFmpeg's name for anything else."""
    name = stream.codec_context.name
    return FFMPEG_NAMES.get(name, name)


def mismatch_message(found: str, expected_format: str) -> str:
    """Why a camera's stream cannot be decoded by a decoder set up for `expected_format`."""
    if found not in CODECS:
        return (f"the camera streams {describe(found)}; the Ascend 310's video decoder takes H.264 or H.265 only: "
                f"set the camera to H.264 or H.265")
    return (f"the camera streams {describe(found)}, the decoder is set up for "
            f"{describe(codec_of_format(expected_format) or expected_format)} (inputVideoFormat "
            f"{expected_format}): set the camera's codec to {found} (or auto) and restart, or set the camera back")


def probe_codec(url: str, is_rtsp: bool, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The codec of the first video stream at `url` (`${VAR}`s expanded here). Raises ConfigError for an unset
    variable, ValueError when there is no video stream, and PyAV's errors when the camera cannot be reached."""
    import av

    expanded = expand_placeholders(url, "url")
    # The SDP (RTSP) or the container header names the codec: no need to read frames.
    options = {"probesize": "32", "analyzeduration": "0"}
    if is_rtsp:
        options["rtsp_transport"] = "tcp"
    with av.open(expanded, options=options, timeout=(timeout_s, timeout_s)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        return stream_codec(container.streams.video[0])


@dataclasses.dataclass(frozen=True)
class CodecFinding:
    camera_id: str
    configured: str  # the config's codec: h264, h265 or auto
    found: Optional[str]  # what the camera streams; None when it could not be asked
    reason: Optional[str] = None  # why it could not be asked (redacted)


@dataclasses.dataclass
class CodecResolution:
    """The config with every `auto` codec the cameras answered replaced, and what was found."""

    config: object  # DaemonConfig
    findings: List[CodecFinding]
    notes: List[str]  # what was found
    warnings: List[str]  # `auto` left unresolved: the camera could not be asked
    problems: List[str]  # a codec the decoder cannot take, or a stated codec the camera contradicts

    @property
    def unresolved(self) -> List[str]:
        return [f.camera_id for f in self.findings if f.configured == "auto" and f.found is None]


def _ask(camera, timeout_s: float) -> CodecFinding:
    try:
        found = probe_codec(camera.url, camera.is_rtsp, timeout_s)
    except ConfigError as exc:
        return CodecFinding(camera.id, camera.codec, None, str(exc))
    except Exception as exc:  # PyAV/FFmpeg errors: refused, timeout, not found
        reason = scrub(f"{type(exc).__name__}: {exc}", placeholder_values(camera.url))
        return CodecFinding(camera.id, camera.codec, None, redact_url(reason))
    return CodecFinding(camera.id, camera.codec, found)


def ask_cameras(cameras: Sequence, timeout_s: float = PROBE_TIMEOUT_S) -> List[CodecFinding]:
    """Every camera asked at once (each waits at most timeout_s), in the config's order."""
    if not cameras:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(cameras))) as pool:
        return list(pool.map(lambda camera: _ask(camera, timeout_s), cameras))


def resolve_codecs(config, source: str = "config", timeout_s: float = PROBE_TIMEOUT_S) -> CodecResolution:
    """Ask every camera which codec it streams: resolve `auto`, and check a stated codec against the camera."""
    findings = ask_cameras(config.cameras, timeout_s)
    notes: List[str] = []
    warnings: List[str] = []
    problems: List[str] = []
    resolved: Dict[int, str] = {}
    for index, (camera, finding) in enumerate(zip(config.cameras, findings)):
        where = f"{source}: cameras[{index}] ({camera.id})"
        if finding.found is None:
            if camera.codec == "auto":
                warnings.append(f"{where}.codec: auto, and the camera could not be asked ({finding.reason}): the "
                                f"graph assumes {DEFAULT_FORMAT}, the decoder's default; set codec: h264 or h265")
            continue
        if finding.found not in CODECS:
            problems.append(f"{where}: {mismatch_message(finding.found, video_format(camera.codec))}")
        elif camera.codec == "auto":
            resolved[index] = finding.found
            notes.append(f"{where}.codec: auto: the camera streams {describe(finding.found)}")
        elif camera.codec != finding.found:
            reason = mismatch_message(finding.found, video_format(camera.codec))
            problems.append(f"{where}.codec: {camera.codec}, but {reason}")
    if resolved:
        cameras = [camera.model_copy(update={"codec": resolved[i]}) if i in resolved else camera
                   for i, camera in enumerate(config.cameras)]
        config = config.model_copy(update={"cameras": cameras})
    return CodecResolution(config, findings, notes, warnings, problems)
