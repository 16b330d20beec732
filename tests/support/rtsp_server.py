"""A real RTSP server for tests: GStreamer's gst-rtsp-server, serving H.264 and H.265 on 127.0.0.1.

Run by Debian's /usr/bin/python3 (the GObject bindings are Debian packages, not importable from a venv):

    /usr/bin/python3 rtsp_server.py PORT NAME=file:/path/clip.mp4 NAME=live:640x360@30 NAME=live265:640x360@15 ...

file: the clip's own H.264, unchanged (qtdemux ! h264parse ! rtph264pay); each client gets its own pipeline
from the start of the file, and an end of stream when it ends. live: a moving test pattern encoded live with
x264 at the given size and rate; live265: the same encoded with x265 (rtph265pay), as most IP cameras stream by
default. Prints "ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


ENCODERS = {"live": ("x264enc", "h264"), "live265": ("x265enc", "h265")}


def launch_line(spec: str) -> str:
    kind, _, value = spec.partition(":")
    if kind == "file":
        return f"( filesrc location={value} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    if kind in ENCODERS:  # a live test pattern, encoded as a camera would
        size, _, fps = value.partition("@")
        width, height = size.split("x")
        encoder, codec = ENCODERS[kind]
        return (f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
                f"framerate={fps}/1 ! {encoder} tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! "
                f"{codec}parse config-interval=-1 ! rtp{codec}pay name=pay0 pt=96 )")
    raise SystemExit(f"unknown source {spec!r}")


def main() -> None:
    Gst.init(None)
    port, mounts = sys.argv[1], sys.argv[2:]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    for mount in mounts:
        name, _, spec = mount.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(spec))
        factory.set_shared(False)
        server.get_mount_points().add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
