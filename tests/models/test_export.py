"""Export: ONNX and MINDIR reproduce the in-memory network, and the ONNX is what `atc` accepts."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # the export stack ([export] extra): the fast tier
ms = pytest.importorskip("mindspore")
helper = onnx.helper

from models.export import ExportError, build_network, compare_outputs, export_model
from models.onnx_check import ATC_ALLOWED_OPS, check_onnx_for_atc
from models.darknet_cfg import parse_cfg
from models.errors import WeightsError
from models.runtime import open_session
from models.spec import ModelSpec
from inspector.cli import main

NAMES = ["insulator", "defect"]


@pytest.fixture(scope="module")
def tiny_weights(weights_factory):
    return weights_factory("yolov4-tiny", 2, seed=2)


@pytest.fixture(scope="module")
def onnx_export(tiny_weights, tmp_path_factory):
    return export_model("yolov4-tiny", tiny_weights, NAMES, "onnx", tmp_path_factory.mktemp("onnx"), size=(320, 416))


def reference_outputs(weights, images, raw=False, size=(320, 416)):
    cfg = parse_cfg("yolov4-tiny", classes=2, height=size[0], width=size[1])
    network, _ = build_network(cfg, weights, raw=raw)
    return [o.asnumpy() for o in network(ms.Tensor(images))]


def batch_of(n, size=(320, 416)):
    return np.random.default_rng(n).random((n, 3) + size, dtype=np.float32)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_runtime_matches_the_network_at_any_batch(onnx_export, tiny_weights, batch):
    images = batch_of(batch)
    got = open_session(onnx_export.model_file, "onnxruntime").run(images)
    expected = reference_outputs(tiny_weights, images)
    assert [g.shape for g in got] == [(batch, 13 * 10 * 3 + 26 * 20 * 3, 4), (batch, 13 * 10 * 3 + 26 * 20 * 3, 2)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_onnx_is_opset_11_with_constant_resize_scales(onnx_export):
    model = onnx.load(onnx_export.model_file)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 11)]
    # Every operator exists in the opset-11 standard schema (get_schema raises for one introduced later, as
    # Trilu in opset 14 shows) and is on the atc allow-list.
    with pytest.raises(onnx.defs.SchemaError):
        onnx.defs.get_schema("Trilu", 11, "")
    for node in model.graph.node:
        assert onnx.defs.get_schema(node.op_type, 11, "").domain == "", node.op_type
        assert node.op_type in ATC_ALLOWED_OPS, node.op_type
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert resizes and all(len(n.input) == 3 for n in resizes)  # X, roi, scales: no 'sizes'
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in resizes:
        np.testing.assert_array_equal(initializers[node.input[2]], [1, 1, 2, 2])
    assert check_onnx_for_atc(model) == []
    assert model.graph.input[0].name == "images"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 320, 416]


def test_manifest_describes_the_exported_model(onnx_export):
    spec = ModelSpec.load(onnx_export.directory)
    assert spec.architecture == "yolov4-tiny" and spec.class_names == tuple(NAMES)
    assert (spec.input_height, spec.input_width) == (320, 416)
    assert spec.model_file == "model.onnx" and spec.model_format == "onnx"
    assert spec.batch_gears == (1, 2, 4, 8)
    assert [t["name"] for t in spec.outputs["tensors"]] == ["boxes", "scores"]
    assert spec.outputs["tensors"][0]["shape"] == ["batch", spec.num_candidates, 4]
    # The cfg copy rebuilds the same network.
    cfg = parse_cfg(f"{onnx_export.directory}/network.cfg")
    assert (cfg.height, cfg.width, cfg.classes) == (320, 416, 2)


def test_mindir_matches_the_network_with_dynamic_batch(tiny_weights, tmp_path):
    result = export_model("yolov4-tiny", tiny_weights, NAMES, "mindir", tmp_path, size=(320, 416))
    session = open_session(result.model_file, "mindspore")
    for batch in (1, 2):
        images = batch_of(batch)
        for g, e in zip(session.run(images), reference_outputs(tiny_weights, images)):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_raw_export_gives_the_head_tensors(tiny_weights, tmp_path):
    result = export_model("yolov4-tiny", tiny_weights, NAMES, "onnx", tmp_path, size=(320, 416), raw=True)
    images = batch_of(2)
    got = open_session(result.model_file).run(images)
    expected = reference_outputs(tiny_weights, images, raw=True)
    assert [g.shape for g in got] == [(2, 21, 10, 13), (2, 21, 20, 26)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
    assert [t["name"] for t in ModelSpec.load(tmp_path).outputs["tensors"]] == ["head_0", "head_1"]


def test_fixed_batch_export(tiny_weights, tmp_path):
    result = export_model("yolov4-tiny", tiny_weights, NAMES, "onnx", tmp_path, size=(320, 416), batch=4)
    model = onnx.load(result.model_file)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert ModelSpec.load(tmp_path).batch_gears == (4,)


def test_export_refuses_incomplete_weights(tmp_path, weights_factory):
    with pytest.raises(WeightsError, match="strict load refused"):
        export_model("yolov4-tiny", weights_factory("yolov4-tiny", 80), NAMES, "onnx", tmp_path)


def test_cli_export_with_a_class_file(tiny_weights, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("insulator\ndefect\n")
    out = tmp_path / "model"
    code = main(["export", "--cfg", "yolov4-tiny", "--weights", str(tiny_weights), "--classes", str(labels),
                 "--format", "onnx", "--out", str(out), "--size", "256"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["self_check"]) == {"boxes", "scores"}
    assert all(entry["error"] <= entry["tolerance"] for entry in printed["self_check"].values())
    assert (out / "model.onnx").is_file() and (out / "labels.txt").read_text() == "insulator\ndefect\n"


def test_atc_precheck_names_each_offending_node(onnx_export):
    model = onnx.load(onnx_export.model_file)
    graph = model.graph
    # Plant a Resize whose scales come from a run-time computation, and an operator atc cannot place.
    graph.node.append(helper.make_node("Shape", ["images"], ["dyn_shape"], name="planted_shape"))
    graph.node.append(helper.make_node("Cast", ["dyn_shape"], ["dyn_scales"], name="planted_cast", to=1))
    graph.node.append(helper.make_node("Resize", ["images", "", "dyn_scales"], ["resized"], name="planted_resize"))
    graph.node.append(helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["nms"], name="planted_nms"))
    problems = {p.node: p for p in check_onnx_for_atc(model)}
    assert "run time" in problems["planted_resize"].reason
    assert problems["planted_nms"].op_type == "NonMaxSuppression"
    assert "allow-list" in problems["planted_shape"].reason
    assert "planted_cast" not in problems
    model.opset_import[0].version = 13
    assert any("opset 13" in p.reason for p in check_onnx_for_atc(model))


def test_unknown_format_is_refused(tiny_weights, tmp_path):
    with pytest.raises(ExportError, match="'air' is not one of onnx, mindir"):
        export_model("yolov4-tiny", tiny_weights, NAMES, "air", tmp_path)


def _boxes_and_scores(width: float):
    """Two candidates: one small box, one `width` pixels wide, with their scores."""
    boxes = np.array([[[10.0, 10.0, 30.0, 50.0], [-width / 2, 0.0, width / 2, 40.0]]], np.float32)
    return boxes, np.array([[[0.9, 0.1], [0.2, 0.05]]], np.float32)


def test_self_check_scales_box_error_with_the_box():
    # The issue-15 failure: float error 0.02 px on a box thousands of pixels wide (untrained exp) is rounding.
    boxes, scores = _boxes_and_scores(4000.0)
    drifted = boxes + np.array([0, 0.02, 0, -0.02], np.float32) * [0, 1, 0, 1]
    drifted[0, 1, 0] -= 0.03
    check = compare_outputs(["boxes", "scores"], [boxes, scores], [drifted, scores])
    assert check["boxes"]["error"] <= check["boxes"]["tolerance"]
    assert check["scores"]["error"] == 0.0


def test_self_check_catches_what_a_broken_conversion_does():
    boxes, scores = _boxes_and_scores(100.0)
    shifted = boxes.copy()
    shifted[0, 0] += 1.0  # 1 px on a 20 x 40 box: a wrong Resize or offset
    check = compare_outputs(["boxes", "scores"], [boxes, scores], [shifted, scores])
    assert check["boxes"]["error"] > check["boxes"]["tolerance"]
    check = compare_outputs(["boxes", "scores"], [boxes, scores], [boxes, scores + 0.01])
    assert check["scores"]["error"] > check["scores"]["tolerance"]
    # What float32 order does to a correctly converted model whose training diverged (raw logits of 2e4): 3e-4
    # on a score, accepted.
    check = compare_outputs(["scores"], [scores], [scores + 3e-4])
    assert check["scores"]["error"] <= check["scores"]["tolerance"]
    raw = np.array([[0.5, -3.0, 40.0]], np.float32)
    check = compare_outputs(["head_0"], [raw], [raw * 1.01])
    assert check["head_0"]["error"] > check["head_0"]["tolerance"]
    with np.errstate(invalid="ignore"):
        nan = compare_outputs(["scores"], [scores], [scores * np.nan])
    assert nan["scores"]["error"] == np.inf


def test_self_check_accepts_overflowed_sizes_on_both_sides():
    boxes = np.array([[[-np.inf, 0.0, np.inf, 10.0]]], np.float32)
    finite = np.array([[[-3e38, 0.0, 3e38, 10.0]]], np.float32)
    assert compare_outputs(["boxes"], [boxes], [finite])["boxes"]["error"] == 0.0


@pytest.mark.parametrize("batch, gears, message", [
    (2, (1, 2, 4, 8), "--batch 2 fixes the batch, so the only gear is 2; --gears 1,2,4,8 needs a dynamic-batch"),
    (0, None, "--batch 0: a fixed batch is 1 or more"),
    (-2, None, "--batch -2: a fixed batch is 1 or more")])
def test_a_fixed_batch_and_gears_that_disagree_are_refused(tmp_path, batch, gears, message):
    with pytest.raises(ExportError, match=message):
        export_model("yolov4-tiny", tmp_path / "w.ckpt", ["a"], "onnx", tmp_path / "out", batch=batch,
                     batch_gears=gears)
    assert not (tmp_path / "out").exists()  # refused before anything is written
