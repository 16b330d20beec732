"""The Ascend device: the MindX SDK's StreamManagerApi behind the device boundary.

This module is the only place that imports the MindX SDK, and only inside the functions that need it
(importing it loads the Ascend driver libraries). On a machine without the SDK, creating the device fails at
once with a message that says what is missing.
"""

from __future__ import annotations

from pipeline.devices.base import BaseDevice, DeviceError

SDK_HINT = ("install the MindX SDK (mxVision) for this Atlas box and `source <sdk>/set_env.sh` (and CANN's "
            "set_env.sh) so that `import StreamManagerApi` works; use --device mock on machines without an NPU")


def import_sdk():
    try:
        import StreamManagerApi  # noqa: F401  (the MindX SDK's Python module)
    except ImportError as exc:
        raise DeviceError(f"the Ascend device needs the MindX SDK, which is not importable here ({exc}): "
                          f"{SDK_HINT}") from exc
    return StreamManagerApi


class AscendDevice(BaseDevice):
    """Runs the rendered graph on the NPU. Everything but the SDK import is still to be built (issue 5)."""

    def __init__(self, **_):
        self.sdk = import_sdk()
        raise DeviceError("the Ascend device's stream handling is not implemented yet (issue 5)")

    def create_streams(self, graph, settings):  # pragma: no cover - unreachable until implemented
        raise NotImplementedError

    def get_result(self, timeout_s):  # pragma: no cover
        raise NotImplementedError

    def finished(self):  # pragma: no cover
        raise NotImplementedError

    def stop_sources(self):  # pragma: no cover
        raise NotImplementedError

    def destroy(self):  # pragma: no cover
        raise NotImplementedError

    def camera_stats(self):  # pragma: no cover
        raise NotImplementedError
