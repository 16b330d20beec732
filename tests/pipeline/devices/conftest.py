"""The Ascend device's tests run against the SDK double with an mxVision install that passes the SDK's own
start-up checks (owned by this process's user), and may not leave the SDK's threads behind."""

import pytest

from tests.pipeline.devices import fake_mindx


@pytest.fixture(autouse=True)
def sdk_home(tmp_path, monkeypatch):
    home = fake_mindx.make_sdk_home(tmp_path / "mxVision")
    monkeypatch.setenv("MX_SDK_HOME", str(home))
    monkeypatch.delenv("GST_PLUGIN_SCANNER", raising=False)
    monkeypatch.delenv("GST_PLUGIN_PATH", raising=False)
    yield home
    # A device that initialised the SDK must destroy it, failed start or not: otherwise the SDK's management
    # threads keep the process from exiting. Stopped here so that one such failure cannot hang the test run.
    leftovers = fake_mindx.stop_leftovers()
    assert not leftovers, "InitManager without DestroyAllStreams: the SDK's threads would keep the process alive"


@pytest.fixture()
def dev_root(tmp_path):
    """A /dev with one NPU node (davinci0), for the device's device-id check."""
    root = tmp_path / "dev"
    root.mkdir()
    (root / "davinci0").touch()
    return root
