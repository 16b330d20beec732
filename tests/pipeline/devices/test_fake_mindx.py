"""The SDK double against the SDK's own declarations and checks (StreamManagerApi.i / .h, MxStreamManager.cpp,
DeviceManager.cpp, MxpiTensorInfer.cpp): a test that passes only because the double is lenient is a defect, so
the double's strictness is itself tested."""

import json
import os

import numpy as np
import pytest

from tests.pipeline.devices import fake_mindx

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def test_strings_cross_the_binding_as_bytes_only():
    vector = fake_mindx.StringVector()
    with pytest.raises(TypeError):
        vector.push_back("mxpi_tensorinfer0")
    item = fake_mindx.MxProtobufIn()
    with pytest.raises(TypeError):
        item.key = "appsrc1"
    with pytest.raises(AttributeError):
        item.name = b"x"  # not a field of MxProtobufIn
    answer = fake_mindx.MxBufferAndMetadataOutput()
    assert answer.errorMsg == b"" and isinstance(answer.metadataVec, fake_mindx.MetadataOutputVector)
    api = fake_mindx.StreamManagerApi()
    with pytest.raises(TypeError, match="overloaded function 'StreamManagerApi_GetResult'"):
        api.GetResult("inspector", b"appsink0", fake_mindx.StringVector(), 200)
    with pytest.raises(TypeError):
        api.GetResult(b"inspector", b"appsink0", fake_mindx.StringVector(), -1)  # unsigned int
    with pytest.raises(TypeError):
        api.CreateMultipleStreams("{}")


def test_getresult_before_initmanager_and_its_answers_are_bytes():
    api = fake_mindx.StreamManagerApi()
    answer = api.GetResult(b"inspector", b"appsink0", fake_mindx.StringVector([b"k"]), 10)
    assert answer.errorCode == fake_mindx.APP_ERR_STREAM_NOT_EXIST and isinstance(answer.errorMsg, bytes)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_initmanager_refuses_a_user_who_does_not_own_the_sdk_after_starting_its_threads(sdk_home):
    os.chown(sdk_home / "lib/libmxbase.so", 4242, 4242)  # installed by another user than the one running
    api = fake_mindx.StreamManagerApi()
    assert api.InitManager() == fake_mindx.APP_ERR_COMM_FAILURE
    assert "Check user permission failed" in api.init_error
    assert api.management_threads_alive()  # started before the user check, as MxStreamManager.cpp does
    assert api.DestroyAllStreams() == 0 and not api.management_threads_alive()


def test_initmanager_refuses_without_mx_sdk_home_and_a_loose_scanner(sdk_home, monkeypatch):
    monkeypatch.delenv("MX_SDK_HOME")
    assert fake_mindx.StreamManagerApi().InitManager() == fake_mindx.APP_ERR_COMM_INVALID_PARAM
    monkeypatch.setenv("MX_SDK_HOME", str(sdk_home))
    os.chmod(sdk_home / "opensource/libexec/gstreamer-1.0/gst-plugin-scanner", 0o755)
    api = fake_mindx.StreamManagerApi()
    assert api.InitManager() == fake_mindx.APP_ERR_COMM_FAILURE and "GST_PLUGIN_SCANNER" in api.init_error
    assert not api.management_threads_alive()  # HandleSDKEnv refuses before any thread starts


def _host_fed_graph(tmp_path, gears=(1, 2, 4), size=(96, 96)):
    model = tmp_path / "m2"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"batch_gears": list(gears), "input_height": size[0],
                                                     "input_width": size[1]}))
    (model / "model.om").write_bytes(b"om")
    return {"main": {"stream_config": {"deviceId": "0"}, "appsink0": {"factory": "appsink"}},
            "stage2": {"stream_config": {"deviceId": "0"},
                       "appsrc1": {"factory": "appsrc", "next": "mxpi_tensorinfer1"},
                       "mxpi_tensorinfer1": {"factory": "mxpi_tensorinfer",
                                             "props": {"dataSource": "appsrc1", "modelPath": str(model / "model.om"),
                                                       "waitingTime": "20"}, "next": "appsink1"},
                       "appsink1": {"factory": "appsink"}}}, str(model / "model.om")


def _send(api, shape, nbytes):
    package = fake_mindx.MxpiTensorPackageList()
    tensor = package.tensorPackageVec.add().tensorVec.add()
    tensor.tensorShape.extend(shape)
    tensor.dataStr = bytes(nbytes)
    item = fake_mindx.MxProtobufIn()
    item.key, item.type, item.protobuf = b"appsrc1", b"MxTools.MxpiTensorPackageList", package.SerializeToString()
    assert api.SendProtobuf(b"stage2", b"appsrc1", fake_mindx.InProtobufVector([item])) == 0


def test_tensorinfer_warns_on_shape_and_refuses_wrong_bytes_for_every_held_buffer(sdk_home, tmp_path):
    graph, model_path = _host_fed_graph(tmp_path)
    fake_mindx.StreamManagerApi.models[model_path] = lambda batch: [np.zeros((batch.shape[0], 2), np.float32)]
    api = fake_mindx.StreamManagerApi()
    api.InitManager()
    assert api.CreateMultipleStreams(json.dumps(graph).encode()) == 0
    keys = fake_mindx.StringVector([b"mxpi_tensorinfer1"])
    try:
        _send(api, [1, 144, 96, 1], 96 * 96 * 3 // 2)  # the V2 dims: only a warning, the bytes are right
        answer = api.GetResult(b"stage2", b"appsink1", keys, 2000)
        assert answer.errorCode == 0 and answer.metadataVec[0].dataType == b"MxpiTensorPackageList"
        assert api.warnings and "does not match model inputTensors" in api.warnings[0]
        api.warnings.clear()
        _send(api, [1, 96, 96, 3], 96 * 96 * 3 // 2)  # the V1 dims: no warning, held for the batch (20 ms)
        _send(api, [1, 96, 96, 3], 96 * 96 * 3)  # wrong bytes: this buffer and the held one answer errors
        answers = [api.GetResult(b"stage2", b"appsink1", keys, 2000) for _ in range(2)]
        assert [a.errorCode for a in answers] == [fake_mindx.APP_ERR_COMM_FAILURE] * 2
        assert all(b"The datasize of concated inputTensors[0]" in a.errorMsg for a in answers)
        assert not api.warnings
        timeout = api.GetResult(b"stage2", b"appsink1", keys, 10)
        assert timeout.errorCode == fake_mindx.APP_ERR_COMM_FAILURE and b"exceed the time limit(10)" in \
            timeout.errorMsg  # the same code as the refusals: only the message differs
    finally:
        api.DestroyAllStreams()
