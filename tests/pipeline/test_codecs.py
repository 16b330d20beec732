"""Asking a camera its codec, and what the graph's decoders are then set up for."""

from __future__ import annotations

import json
import time

import pytest

from inspector.cli import main
from pipeline.codecs import probe_codec, resolve_codecs, video_format
from pipeline.config import parse_config
from tests.support.clips import encode_clip
from tests.support.daemon import RunningDaemon
from tests.support.rtsp import RtspServer, free_port, gstreamer_available


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("codecs")
    return {"h264": encode_clip(root / "avc.mp4", frames=5, width=320, height=180),
            "h265": encode_clip(root / "hevc.mp4", frames=5, width=320, height=180, codec="libx265"),
            "mpeg4": encode_clip(root / "part2.mp4", frames=5, width=320, height=180, codec="mpeg4")}


def config_of(model_dir, *cameras):
    return parse_config({"cameras": list(cameras), "model": str(model_dir)})


def test_a_file_is_read_for_its_codec(clips):
    assert {name: probe_codec(str(path), is_rtsp=False) for name, path in clips.items()} == \
        {"h264": "h264", "h265": "h265", "mpeg4": "mpeg4"}
    assert (video_format("h264"), video_format("h265"), video_format("auto")) == ("H264", "H265", "H264")


def test_auto_is_resolved_a_stated_codec_checked(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("PW", "Sesame42")
    unreachable = f"rtsp://op:${{PW}}@127.0.0.1:{free_port()}/live"
    config = config_of(tmp_path,
                       {"id": "auto265", "url": str(clips["h265"])},
                       {"id": "said264", "url": str(clips["h264"]), "codec": "h264"},
                       {"id": "wrong", "url": str(clips["h265"]), "codec": "h264"},
                       {"id": "part2", "url": str(clips["mpeg4"])},
                       {"id": "down", "url": unreachable},
                       {"id": "down-said", "url": unreachable, "codec": "h265"},
                       {"id": "unset", "url": "rtsp://op:${NOT_SET_ANYWHERE}@127.0.0.1/x"})
    resolution = resolve_codecs(config, "site.yaml", timeout_s=3)
    assert [c.codec for c in resolution.config.cameras] == ["h265", "h264", "h264", "auto", "auto", "h265", "auto"]
    assert resolution.notes == ["site.yaml: cameras[0] (auto265).codec: auto: the camera streams H.265"]
    assert resolution.problems == [
        "site.yaml: cameras[2] (wrong).codec: h264, but the camera streams H.265, the decoder is set up for H.264 "
        "(inputVideoFormat H264): set the camera's codec to h265 (or auto) and restart, or set the camera back",
        "site.yaml: cameras[3] (part2): the camera streams mpeg4; the Ascend 310's video decoder takes H.264 or "
        "H.265 only: set the camera to H.264 or H.265"]
    # A camera that cannot be asked keeps the default, said once per camera; a stated codec is believed.
    assert len(resolution.warnings) == 2 and resolution.unresolved == ["down", "unset"]
    assert resolution.warnings[0].startswith("site.yaml: cameras[4] (down).codec: auto, and the camera could not be "
                                             "asked (") and "the graph assumes H264" in resolution.warnings[0]
    assert "NOT_SET_ANYWHERE" in resolution.warnings[1]
    assert not any("Sesame42" in line for line in resolution.warnings + resolution.problems)
    assert not any("Sesame42" in (f.reason or "") for f in resolution.findings)


# --- real cameras: GStreamer's RTSP server on 127.0.0.1, x264 and x265 ------------------------------------------
@pytest.fixture()
def gstreamer():
    reason = gstreamer_available()
    if reason:
        pytest.skip(reason)


def camera_stats(running) -> dict:
    """Each camera's live counters, once the device has created its streams."""
    running.wait(lambda: running.daemon.device.camera_stats(), 60)
    return {s.camera_id: s for s in running.daemon.device.camera_stats()}


def site(model_dir, out, *cameras, **extra) -> dict:
    # Any free port: a daemon on this machine (or another test's) may hold the default one.
    return {"cameras": list(cameras), "model": str(model_dir), "output": {"directory": str(out)},
            "batching": {"max_batch": 2, "waiting_time_ms": 20}, "http": {"port": 0}, **extra}


def test_a_mixed_site_is_asked_rendered_and_decoded(gstreamer, tiny_model_dir, tmp_path, capsys):
    with RtspServer({"avc": "live:320x180@15", "hevc": "live265:320x180@15"}) as server:
        data = site(tiny_model_dir, tmp_path / "out", {"id": "avc", "url": server.url("avc")},
                    {"id": "hevc", "url": server.url("hevc")})
        path = tmp_path / "site.yaml"
        path.write_text(json.dumps(data))
        assert main(["validate", "--config", str(path)]) == 0
        err = capsys.readouterr().err
        assert "cameras[0] (avc).codec: auto: the camera streams H.264" in err
        assert "cameras[1] (hevc).codec: auto: the camera streams H.265" in err
        graph = tmp_path / "pipeline.json"
        assert main(["render", "--config", str(path), "--out", str(graph)]) == 0
        formats = [e["props"]["inputVideoFormat"] for e in json.loads(graph.read_text())["inspector"].values()
                   if e.get("factory") == "mxpi_videodecoder"]
        assert formats == ["H264", "H265"]
        with RunningDaemon(parse_config(data)) as running:
            stats = camera_stats(running)
            running.wait(lambda: min(s.processed for s in stats.values()) >= 10, 90)
        ran = json.loads((tmp_path / "out" / "pipeline.json").read_text())["inspector"]
        assert ran["mxpi_videodecoder1"]["props"]["inputVideoFormat"] == "H265"
        assert {s.state for s in stats.values()} <= {"running", "finished"} and stats["hevc"].errors == 0


@pytest.mark.slow
def test_a_camera_that_comes_back_with_another_codec_fails_alone(gstreamer, tiny_model_dir, tmp_path):
    port = free_port()
    switching = RtspServer({"cam": "live:320x180@15"}, port=port).start()
    try:
        with RtspServer({"steady": "live:320x180@15"}) as steady:
            config = parse_config(site(
                tiny_model_dir, tmp_path / "out",
                {"id": "switching", "url": switching.url("cam"), "reconnect_max_s": 1, "no_frame_timeout_s": 2},
                {"id": "steady", "url": steady.url("steady")}))
            with RunningDaemon(config) as running:
                stats = camera_stats(running)
                running.wait(lambda: stats["switching"].processed >= 10 and stats["steady"].processed >= 10, 60)
                switching.stop()  # the camera reboots with its factory default: H.265
                switching = RtspServer({"cam": "live265:320x180@15"}, port=port).start()
                running.wait(lambda: stats["switching"].state == "failed", 60)
                assert stats["switching"].last_error.startswith("the camera streams H.265, the decoder is set up for "
                                                                "H.264")
                status = running.daemon.view.status()["cameras"]
                assert [c["last_error"] for c in status if c["id"] == "switching"] == [stats["switching"].last_error]
                before = (stats["switching"].processed, stats["steady"].processed)
                time.sleep(3)
                assert stats["switching"].processed == before[0] and stats["steady"].processed > before[1] + 10
                assert not running.daemon.view.camera_health()["switching"]
                switching.stop()  # set back to H.264: the camera recovers without a restart
                switching = RtspServer({"cam": "live:320x180@15"}, port=port).start()
                running.wait(lambda: stats["switching"].processed > before[0] + 10, 60)
                assert stats["switching"].state == "running"
    finally:
        switching.stop()
