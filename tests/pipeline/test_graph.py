import copy
import json

import pytest

from models.spec import ModelSpec
from pipeline.config import parse_config
from pipeline.graph import check_config_against_model, graph_warnings, read_graph, render_graph, validate_graph
from inspector.cli import main

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


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
    assert stream["mxpi_rtspsrc0"]["next"] == "mxpi_videodecoder0"
    assert stream["mxpi_videodecoder0"]["next"] == "queue0"
    # Live cameras: the queue after the decoder drops the oldest decoded frame (leaky 2), as the mock does.
    assert stream["queue0"] == {"factory": "queue", "props": {"max-size-buffers": "2", "leaky": "2"},
                                "next": "mxpi_parallel2serial0:0"}
    assert stream["queue1"]["next"] == "mxpi_skipframe1"
    assert stream["mxpi_skipframe1"] == {"factory": "mxpi_skipframe", "props": {"frameNum": "2"},
                                         "next": "mxpi_parallel2serial0:1"}
    assert stream["filesrc2"]["props"]["location"] == "/clips/c.mp4"
    assert stream["queue2"]["props"]["leaky"] == "0"  # a file loses nothing
    # parallel2serial re-publishes the decoders' metadata (skipframe adds none); the resize reads it by name.
    assert stream["mxpi_parallel2serial0"]["props"]["dataSource"] == \
        "mxpi_videodecoder0,mxpi_videodecoder1,mxpi_videodecoder2"
    assert stream["mxpi_imageresize0"]["props"]["dataSource"] == "mxpi_parallel2serial0"
    # The placeholder stays in the file: the device expands it when it opens the stream.
    assert stream["mxpi_rtspsrc1"]["props"]["rtspUrl"] == "rtsp://u:${PW}@127.0.0.1/b"
    assert stream["mxpi_imageresize0"]["props"]["resizeHeight"] == "320"
    assert stream["mxpi_tensorinfer0"]["props"]["waitingTime"] == "25"
    assert stream["mxpi_tensorinfer0"]["props"]["modelPath"].endswith("model.om")
    assert stream["mxpi_tensorinfer0"]["next"] == "appsink0"
    assert validate_graph(graph, spec=spec, config=config, for_mock=True) == []
    plan, problems = read_graph(graph)
    assert problems == [] and [c.source for c in plan.cameras] == ["mxpi_rtspsrc0", "mxpi_rtspsrc1", "filesrc2"]
    assert (plan.resize, plan.infer, plan.sink, plan.cameras[1].frame_skip) == \
        ("mxpi_imageresize0", "mxpi_tensorinfer0", "appsink0", 2)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["queue0"].update(next="mxpi_videodecoderX"), "next 'mxpi_videodecoderX' names no element"),
    (lambda s: s["mxpi_tensorinfer0"]["props"].update(dataSource="resize9"), "dataSource 'resize9' names no"),
    (lambda s: s["mxpi_imageresize0"]["props"].update(resizeHeight="416"), "resize 416x320 differs from the"),
    (lambda s: s.pop("filesrc2") and s.pop("queue2") and s.pop("mxpi_videodecoder2"), "2 camera sources, the"),
    (lambda s: s["queue1"].update(props={"max-size-buffers": 5}), "props must be an object of string values"),
    (lambda s: s.update(orphan={"factory": "queue", "next": "appsink0"}), "'orphan' is never reached"),
    # What the SDK itself refuses or silently gets wrong (pipeline/sdk.py, from its reference and source).
    (lambda s: s["mxpi_tensorinfer0"]["props"].update(waitingTime="0"), "waitingTime='0': outside 1..1e+06"),
    (lambda s: s["mxpi_tensorinfer0"]["props"].update(waitingTime="soon"), "waitingTime='soon': not an integer"),
    (lambda s: s["mxpi_tensorinfer0"]["props"].update(dynamicStrategy="Biggest"), "not one of Nearest, Upper"),
    (lambda s: s["mxpi_skipframe1"]["props"].update(frameNum="101"), "frameNum='101': outside 0..100"),
    (lambda s: s["queue0"]["props"].update(leaky="3"), "leaky='3': outside 0..2"),
    (lambda s: s["queue0"]["props"].update({"max-size-time": "5"}), "property max-size-time cannot be set"),
    (lambda s: s["mxpi_imageresize0"]["props"].update(resizeTyp="x"), "no property 'resizeTyp'"),
    (lambda s: s["mxpi_parallel2serial0"]["props"].update(dataSource="mxpi_videodecoder0,mxpi_skipframe1,"
                                                                      "mxpi_videodecoder2"),
     "dataSource names mxpi_skipframe1: mxpi_skipframe adds no metadata"),
    (lambda s: s["mxpi_imageresize0"]["props"].pop("dataSource"), "no dataSource; after 'mxpi_parallel2serial0'"),
    (lambda s: s["appsink0"].update(next="mxpi_imageresize0"), "elements form a cycle"),
    (lambda s: s["mxpi_tensorinfer0"]["props"].update(modelPath="/elsewhere/model.om"), "not in the config's model"),
    (lambda s: s["mxpi_rtspsrc0"]["props"].update(rtspUrl="rtsp://127.0.0.1/other"), "its URL differs from camera"),
])
def test_validate_finds_each_problem(config, tiny_model_dir, edit, message):
    spec = ModelSpec.load(tiny_model_dir)
    graph = copy.deepcopy(render_graph(config, spec))
    edit(graph["inspector"])
    problems = validate_graph(graph, spec=spec, config=config)
    assert any(message in p for p in problems), problems


def test_an_unknown_plugin_is_a_warning_not_an_error(config, tiny_model_dir):
    spec = ModelSpec.load(tiny_model_dir)
    graph = copy.deepcopy(render_graph(config, spec))
    graph["inspector"]["mxpi_tensorinfer0"]["next"] = "customer_filter0"
    graph["inspector"]["customer_filter0"] = {"factory": "customer_filter", "props": {"anything": "1"},
                                              "next": "appsink0"}
    assert validate_graph(graph, spec=spec, config=config) == []
    assert "factory 'customer_filter' is not a documented MindX SDK plugin" in graph_warnings(graph)[0]
    assert any("not emulated by the mock" in p for p in validate_graph(graph, for_mock=True))


def test_the_ascend_device_refuses_file_sources_up_front(config, tiny_model_dir):
    graph = render_graph(config, ModelSpec.load(tiny_model_dir))
    problems = validate_graph(graph, device="ascend")
    assert len(problems) == 1 and "'filesrc2': a file source does not decode on the device" in problems[0]
    assert "serve the file over RTSP" in problems[0]


@pytest.mark.parametrize("graph", [
    None, [], "text", {}, {"a": 1}, {"a": {"x": 1}}, {"a": {"x": {"factory": 3}}}, {"a": {}, "b": {}},
    {"a": {"x": {"factory": "queue", "next": 5}}}, {"a": {"x": {"factory": "queue", "next": "x"}}},
    {"a": {"x": {"factory": "mxpi_rtspsrc", "props": {"rtspUrl": "rtsp://h/s"}, "next": "x"}}},
    {"a": {"x": {"factory": "mxpi_rtspsrc", "props": {}, "next": ["y", "z"]}}},
    {"a": {"stream_config": "x", "x": {"factory": "appsink", "props": {"a": None}}}},
    {"a": {"x": {"factory": "mxpi_tensorinfer", "props": {"modelPath": "m", "waitingTime": "1e3"},
                 "nextMeta": ["y"]}}},
])
def test_no_graph_makes_validate_raise(graph):
    problems = validate_graph(graph, device="ascend")
    assert problems and all(isinstance(p, str) for p in problems)


def test_the_sdks_own_samples_are_valid(shared_dir):
    """The SDK samples in ../shared/reference/mindx: accepted (their plugins known or warned about)."""
    for path in sorted((shared_dir / "reference/mindx").glob("*.pipeline")):
        graph = json.loads(path.read_text())
        for name, stream in graph.items():
            problems = validate_graph({name: stream}, str(path))
            assert problems == [], (path.name, problems)


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


def test_config_must_agree_with_the_model(tiny_model_dir):
    config = parse_config({"cameras": [{"id": "a", "url": "x.mp4"}], "model": str(tiny_model_dir),
                           "batching": {"max_batch": 3}, "thresholds": {"per_class": {"bird": 0.5}}})
    problems = check_config_against_model(config, ModelSpec.load(tiny_model_dir))
    assert "batching.max_batch: 3 is not one of the model's dynamic-batch gears [1, 2, 4, 8]" in problems[0]
    assert "thresholds.per_class.bird: not a class of the model (insulator, defect)" in problems[1]
    # On the device, mxpi_tensorinfer fills every batch to the OM's largest gear: it must be max_batch.
    ascend = parse_config({"cameras": [{"id": "a", "url": "rtsp://h/s"}], "model": str(tiny_model_dir),
                           "device": "ascend", "batching": {"max_batch": 4}})
    problems = check_config_against_model(ascend, ModelSpec.load(tiny_model_dir))
    assert problems == ["config: batching.max_batch: 4, but the OM's largest gear is 8: mxpi_tensorinfer fills "
                        "batches to its largest gear; convert with `inspector convert --gears 1,2,4`"]


def test_cli_render_then_validate(config, tiny_model_dir, tmp_path, capsys, monkeypatch):
    from tests.support.clips import DEMO_CLIP

    monkeypatch.setenv("PW", "pw")  # validate checks that what the config names exists
    data = json.loads(config.model_dump_json())
    data["cameras"][2]["url"] = str(DEMO_CLIP)
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    graph = tmp_path / "pipeline.json"
    # Cameras that cannot be asked their codec (nothing listens): the graph for a box must name it.
    assert main(["render", "--config", str(path), "--out", str(graph)]) == 1 and not graph.exists()
    err = capsys.readouterr().err
    assert "cameras[0] (a).codec: auto, and the camera could not be asked" in err and "cameras[1] (b)" in err
    assert "cameras[2]" not in err and "pw" not in err  # the file answered; no secret in the reason
    data["cameras"][0]["codec"], data["cameras"][1]["codec"] = "h264", "h265"
    path.write_text(json.dumps(data))
    assert main(["render", "--config", str(path), "--out", str(graph)]) == 0
    assert "cameras[2] (c).codec: auto: the camera streams H.264" in capsys.readouterr().err
    decoders = {n: e["props"]["inputVideoFormat"] for n, e in json.loads(graph.read_text())["inspector"].items()
                if n.startswith("mxpi_videodecoder")}
    assert decoders == {"mxpi_videodecoder0": "H264", "mxpi_videodecoder1": "H265", "mxpi_videodecoder2": "H264"}
    assert main(["validate", "--config", str(path), "--graph", str(graph)]) == 0
    # A graph whose decoder contradicts the config's codec.
    data = json.loads(graph.read_text())
    data["inspector"]["mxpi_videodecoder1"]["props"]["inputVideoFormat"] = "H264"
    graph.write_text(json.dumps(data))
    assert main(["validate", "--config", str(path), "--graph", str(graph)]) == 1
    assert "'mxpi_videodecoder1': inputVideoFormat H264, camera 'b' streams H.265" in capsys.readouterr().err
    data = json.loads(graph.read_text())
    data["inspector"]["mxpi_videodecoder1"]["props"]["inputVideoFormat"] = "H265"
    data["inspector"]["mxpi_imageresize0"]["props"]["resizeWidth"] = "608"
    graph.write_text(json.dumps(data))
    assert main(["validate", "--config", str(path), "--graph", str(graph)]) == 1
    assert "resize 320x608 differs from the model input 320x320" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["rtsp://admin:Sesame42@127.0.0.1/a", "rtsp://admin:Ses/ame42@127.0.0.1/a",
                                 "rtsp://admin:Ses ame42@127.0.0.1/a", "rtsp://127.0.0.1/a?password=Sesame42"])
def test_a_hand_edited_graph_with_a_password_is_refused_without_echoing_it(config, tiny_model_dir, url):
    graph = render_graph(config, ModelSpec.load(tiny_model_dir))
    graph["inspector"]["mxpi_rtspsrc0"]["props"]["rtspUrl"] = url
    problems = validate_graph(graph, spec=ModelSpec.load(tiny_model_dir), config=config)
    assert any("'mxpi_rtspsrc0': rtspUrl holds a password" in p for p in problems)
    assert not any(part in p for p in problems for part in ("Sesame", "Ses/", "ame42"))


def test_the_repositorys_pipeline_json_is_the_rendered_default(tmp_path):
    """pipeline.json at the top of the repository is the graph of the embedded default config; re-render it
    with `inspector render --config pipeline/demo/demo.yaml --relative-to . --out pipeline.json`."""
    import pathlib

    repo = pathlib.Path(__file__).resolve().parents[2]
    out = tmp_path / "pipeline.json"
    assert main(["render", "--config", str(repo / "pipeline/demo/demo.yaml"), "--relative-to", str(repo),
                 "--out", str(out)]) == 0
    assert out.read_text() == (repo / "pipeline.json").read_text()
    assert validate_graph(json.loads(out.read_text())) == []


def test_keys_the_sdk_does_not_read_are_a_warning(config, tiny_model_dir):
    # The SDK's own samples put e.g. "former" on an appsink; the SDK reads factory, props, next, nextMeta.
    spec = ModelSpec.load(tiny_model_dir)
    graph = copy.deepcopy(render_graph(config, spec))
    graph["inspector"]["appsink0"]["former"] = "mxpi_tensorinfer0"
    assert validate_graph(graph, spec=spec, config=config) == []
    assert any("keys ['former'] are not read by the SDK" in w for w in graph_warnings(graph))


def test_cli_validate_for_the_ascend_device(tiny_model_dir, tmp_path, capsys):
    from tests.support.clips import DEMO_CLIP

    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps({"cameras": [{"id": "rec", "url": str(DEMO_CLIP)}], "model": str(tiny_model_dir),
                                "output": {"directory": str(tmp_path / "out")}}))
    assert main(["validate", "--config", str(path)]) == 0  # the mock decodes files
    capsys.readouterr()
    assert main(["validate", "--config", str(path), "--device", "ascend"]) == 1
    err = capsys.readouterr().err
    assert "'filesrc0': a file source does not decode on the device" in err
    assert "the OM's largest gear is 8" in err  # and tensorinfer would fill batches of 8, not max_batch 4


def test_a_second_stage_is_its_own_stream_and_is_checked(config, tiny_model_dir, stage2_model_dir):
    spec = ModelSpec.load(tiny_model_dir)
    with_stage2 = config.model_copy(update={"stage2": parse_config({
        "cameras": [{"id": "a", "url": "rtsp://127.0.0.1/a"}], "model": str(tiny_model_dir),
        "stage2": {"model": str(stage2_model_dir)}}).stage2})
    graph = render_graph(with_stage2, spec)
    assert graph["inspector_stage2"]["appsrc1"]["next"] == "mxpi_tensorinfer1"
    props = graph["inspector_stage2"]["mxpi_tensorinfer1"]["props"]
    assert props["dataSource"] == "appsrc1" and props["modelPath"] == str(stage2_model_dir / "model.om")
    assert validate_graph(graph, spec=spec, config=with_stage2, for_mock=True) == []
    plan, _ = read_graph(graph)
    assert (plan.stage2.source, plan.stage2.infer, plan.stage2.sink) == ("appsrc1", "mxpi_tensorinfer1", "appsink1")
    # The config and the graph must agree on the second stage.
    assert any("has a 'inspector_stage2' stream" in p for p in validate_graph(graph, config=config))
    assert any("has no 'inspector_stage2' stream" in p
               for p in validate_graph(render_graph(config, spec), config=with_stage2))
    # Anything but appsrc -> tensorinfer -> appsink, or a tensorinfer reading something else, is refused.
    broken = copy.deepcopy(graph)
    broken["inspector_stage2"]["mxpi_imageresize1"] = {"factory": "mxpi_imageresize"}
    assert any("expected exactly one appsrc -> mxpi_tensorinfer -> appsink" in p for p in validate_graph(broken))
    broken = copy.deepcopy(graph)
    broken["inspector_stage2"]["mxpi_tensorinfer1"]["props"]["dataSource"] = "appsrc9"
    assert any("dataSource must be 'appsrc1'" in p for p in validate_graph(broken))
    broken = copy.deepcopy(graph)
    broken["inspector_stage2"]["mxpi_tensorinfer1"]["props"]["waitingTime"] = "0"
    assert any("'inspector_stage2'" in p and "waitingTime" in p for p in validate_graph(broken))
    # A third stream is not something the daemon runs.
    assert "the daemon runs one camera stream" in validate_graph({**graph, "other": graph["inspector"]})[0]


def test_a_key_a_custom_plugin_publishes_is_a_warning_and_the_verdicts_are_apart(tmp_path, capsys):
    """Shaped like the SDK's AllObjectsStructuring sample: a plugin of its own publishes metadata under a key
    (its outputKeys) that a later element reads. Valid for the SDK (with a warning); whether inspector's devices
    can run the graph is said on its own lines."""
    from inspector.cli import main

    graph = {"structuring": {
        "stream_config": {"deviceId": "0"},
        "mxpi_rtspsrc0": {"factory": "mxpi_rtspsrc", "props": {"rtspUrl": "rtsp://10.0.0.1/s"},
                          "next": "mxpi_videodecoder0"},
        "mxpi_videodecoder0": {"factory": "mxpi_videodecoder", "next": "mxpi_selectobject0"},
        "mxpi_selectobject0": {"factory": "mxpi_selectobject", "props": {"outputKeys": "vision"},
                               "next": "mxpi_imageresize0"},
        "mxpi_imageresize0": {"factory": "mxpi_imageresize", "props": {"dataSource": "vision"},
                              "next": "appsink0"},
        "appsink0": {"factory": "appsink"}}}
    path = tmp_path / "structuring.pipeline"
    path.write_text(json.dumps(graph))
    assert main(["validate", "--graph", str(path)]) == 0
    captured = capsys.readouterr()
    assert "valid for the MindX SDK" in captured.out
    assert "dataSource 'vision' names no element; it may be a key that 'mxpi_selectobject0' publishes" in captured.err
    assert "inspector on the mock device: cannot run it" in captured.out
    assert "inspector on the Ascend device: cannot run it" in captured.out and "mxpi_tensorinfer" in captured.out
    # Without a plugin that could publish it, an unknown key is still an error.
    graph["structuring"]["mxpi_selectobject0"]["factory"] = "mxpi_imageresize"
    del graph["structuring"]["mxpi_selectobject0"]["props"]
    path.write_text(json.dumps(graph))
    assert main(["validate", "--graph", str(path)]) == 1
    assert "dataSource 'vision' names no element" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["fire_v.pipeline", "detection_yolov3_crop.pipeline", "meter_det.pipeline",
                                  "passengerflowestimation.pipeline", "infer_offline_video_regular.pipeline"])
def test_the_sdk_samples_get_a_verdict_for_the_sdk_and_for_inspector(shared_dir, name, capsys):
    from inspector.cli import main

    main(["validate", "--graph", str(shared_dir / "reference/mindx" / name)])
    out = capsys.readouterr().out
    assert "inspector on the mock device:" in out and "inspector on the Ascend device:" in out
