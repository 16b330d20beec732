import copy
import json

import pytest

from models.spec import ModelSpec
from pipeline.config import parse_config
from pipeline.graph import check_config_against_model, render_graph, validate_graph
from inspector.cli import main


@pytest.fixture()
def config(tiny_model_dir):
    return parse_config({
        "cameras": [{"id": "a", "url": "rtsp://127.0.0.1/a"}, {"id": "b", "url": "rtsp://u:${PW}@127.0.0.1/b",
                                                               "frame_skip": 2}, {"id": "c", "url": "/clips/c.mp4"}],
        "model": str(tiny_model_dir), "batching": {"max_batch": 4, "waiting_time_ms": 25}})


def test_render_three_cameras(config, tiny_model_dir):
    spec = ModelSpec.load(tiny_model_dir)
    graph = render_graph(config, spec)
    stream = graph["inspector"]
    assert stream["mxpi_rtspsrc0"]["next"] == "queue0"
    assert stream["mxpi_videodecoder0"]["next"] == "mxpi_parallel2serial0:0"
    assert stream["mxpi_videodecoder1"]["next"] == "mxpi_skipframe1"
    assert stream["mxpi_skipframe1"] == {"factory": "mxpi_skipframe", "props": {"frameNum": "2"},
                                         "next": "mxpi_parallel2serial0:1"}
    assert stream["filesrc2"]["props"]["location"] == "/clips/c.mp4"
    # The placeholder stays in the file: the device expands it when it opens the stream.
    assert stream["mxpi_rtspsrc1"]["props"]["rtspUrl"] == "rtsp://u:${PW}@127.0.0.1/b"
    assert stream["mxpi_imageresize0"]["props"]["resizeHeight"] == "320"
    assert stream["mxpi_tensorinfer0"]["props"]["waitingTime"] == "25"
    assert stream["mxpi_tensorinfer0"]["props"]["modelPath"].endswith("model.om")
    assert validate_graph(graph, spec=spec, config=config, for_mock=True) == []


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(mxpi_foo0={"factory": "mxpi_foo", "next": "appsink0"}), "unknown factory 'mxpi_foo'"),
    (lambda s: s["queue0"].update(next="mxpi_videodecoderX"), "next 'mxpi_videodecoderX' names no element"),
    (lambda s: s["mxpi_tensorinfer0"]["props"].update(dataSource="resize9"), "dataSource 'resize9' names no"),
    (lambda s: s["mxpi_imageresize0"]["props"].update(resizeHeight="416"), "resize 416x320 differs from the"),
    (lambda s: s.pop("filesrc2") and s.pop("queue2") and s.pop("mxpi_videodecoder2"), "2 camera sources, the"),
    (lambda s: s["queue1"].update(props={"max-size-buffers": 5}), "props must be an object of string values"),
    (lambda s: s.update(orphan={"factory": "queue", "next": "appsink0"}), "'orphan' is never reached"),
])
def test_validate_finds_each_problem(config, tiny_model_dir, edit, message):
    spec = ModelSpec.load(tiny_model_dir)
    graph = copy.deepcopy(render_graph(config, spec))
    edit(graph["inspector"])
    problems = validate_graph(graph, spec=spec, config=config)
    assert any(message in p for p in problems), problems


def test_mock_refuses_plugins_it_cannot_emulate(shared_dir):
    """The real MindX reference graphs: valid MindX, but the mock names each element it cannot run."""
    path = shared_dir / "reference/mindx/passengerflowestimation.pipeline"
    graph = json.loads(path.read_text())
    assert validate_graph(graph, str(path)) == []
    problems = validate_graph(graph, str(path), for_mock=True)
    refused = {p.split("element ")[1].split(":")[0] for p in problems}
    assert refused == {"'tee0'", "'mxpi_objectpostprocessor0'", "'mxpi_selectobject0'", "'motV2'",
                       "'mxpi_passengerflowestimation0'", "'mxpi_object2osdinstances0'", "'mxpi_opencvosd0'",
                       "'mxpi_videoencoder0'"}
    assert any("factory 'mxpi_objectpostprocessor' is not emulated" in p for p in problems)
    regular = shared_dir / "reference/mindx/infer_offline_video_regular.pipeline"
    problems = validate_graph(json.loads(regular.read_text()), str(regular), for_mock=True)
    assert problems == [f"{regular}: stream 'inferofflinevideo': element 'mxpi_modelinfer0': factory "
                        f"'mxpi_modelinfer' is not emulated by the mock device (emulated: appsink, filesrc, "
                        f"mxpi_dataserialize, mxpi_imageresize, mxpi_parallel2serial, mxpi_rtspsrc, "
                        f"mxpi_skipframe, mxpi_tensorinfer, mxpi_videodecoder, queue)"]


def test_config_must_agree_with_the_model(tiny_model_dir):
    config = parse_config({"cameras": [{"id": "a", "url": "x.mp4"}], "model": str(tiny_model_dir),
                           "batching": {"max_batch": 3}, "thresholds": {"per_class": {"bird": 0.5}}})
    problems = check_config_against_model(config, ModelSpec.load(tiny_model_dir))
    assert "batching.max_batch: 3 is not one of the model's dynamic-batch gears [1, 2, 4, 8]" in problems[0]
    assert "thresholds.per_class.bird: not a class of the model (insulator, defect)" in problems[1]


def test_cli_render_then_validate(config, tiny_model_dir, tmp_path, capsys, monkeypatch):
    from tests.support.clips import DEMO_CLIP

    monkeypatch.setenv("PW", "pw")  # validate checks that what the config names exists
    data = json.loads(config.model_dump_json())
    data["cameras"][2]["url"] = str(DEMO_CLIP)
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    graph = tmp_path / "pipeline.json"
    assert main(["render", "--config", str(path), "--out", str(graph)]) == 0
    assert main(["validate", "--config", str(path), "--graph", str(graph)]) == 0
    data = json.loads(graph.read_text())
    data["inspector"]["mxpi_imageresize0"]["props"]["resizeWidth"] = "608"
    graph.write_text(json.dumps(data))
    assert main(["validate", "--config", str(path), "--graph", str(graph)]) == 1
    assert "resize 320x608 differs from the model input 320x320" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["rtsp://admin:Sesame42@127.0.0.1/a", "rtsp://admin:Ses/ame42@127.0.0.1/a",
                                 "rtsp://admin:Ses ame42@127.0.0.1/a"])
def test_a_hand_edited_graph_with_a_password_is_refused_without_echoing_it(config, tiny_model_dir, url):
    graph = render_graph(config, ModelSpec.load(tiny_model_dir))
    graph["inspector"]["mxpi_rtspsrc0"]["props"]["rtspUrl"] = url
    problems = validate_graph(graph, spec=ModelSpec.load(tiny_model_dir), config=config)
    assert any("'mxpi_rtspsrc0': rtspUrl holds a password" in p for p in problems)
    assert not any(part in p for p in problems for part in ("Sesame", "Ses/", "ame42"))
