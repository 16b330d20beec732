#!/usr/bin/env bash
# Debian packages the tests use as real components: GStreamer's RTSP server (run by Debian's python3, with the
# x264 and x265 encoders), the ShellCheck linter and systemd-analyze for the deploy scripts and the unit, the
# mosquitto MQTT broker (client tools too) and headless Chromium for the status page.
# Idempotent: installs only what is missing. Needs root (or sudo) the first time.
set -euo pipefail
packages=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
          gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools shellcheck systemd mosquitto mosquitto-clients openssl chromium)
if /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer" \
    2>/dev/null && gst-inspect-1.0 x264enc >/dev/null 2>&1 && gst-inspect-1.0 x265enc >/dev/null 2>&1 \
    && gst-inspect-1.0 qtdemux >/dev/null 2>&1 \
    && command -v shellcheck >/dev/null && command -v systemd-analyze >/dev/null \
    && command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null && command -v chromium >/dev/null \
    && command -v openssl >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
