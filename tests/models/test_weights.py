import numpy as np
import pytest

pytest.importorskip("mindspore")  # the fast tier: the networks are MindSpore's

from models.darknet_cfg import parse_cfg
from models.errors import WeightsError
from models.network import DarknetYolo
from models.testing import random_state
from models.weights import (load_weights, network_parameters, read_darknet_weights, save_checkpoint,
                            write_darknet_weights)


def snapshot(network):
    return {name: p.asnumpy().copy() for name, p in network_parameters(network).items()}


def test_darknet_round_trip_loads_every_tensor(weights_factory):
    cfg = parse_cfg("yolov4-tiny", classes=2)
    network = DarknetYolo(cfg)
    report = load_weights(network, weights_factory("yolov4-tiny", 2, seed=3), strict=True)
    expected = random_state(cfg, 3)
    assert not report.missing and not report.mismatched and not report.unexpected
    assert len(report.loaded) == len(expected) == len(network_parameters(network))
    for name, value in snapshot(network).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_class_count_is_read_from_the_file_size_and_the_head_is_the_only_difference(weights_factory):
    cfg = parse_cfg("yolov4-tiny", classes=2)
    network = DarknetYolo(cfg)
    report = load_weights(network, weights_factory("yolov4-tiny", 80), strict=True)
    assert report.source_classes == 80
    assert sorted(name for name, _, _ in report.mismatched) == [
        "layers.29.conv.bias", "layers.29.conv.weight", "layers.36.conv.bias", "layers.36.conv.weight"]
    assert report.uninitialised_layers == [29, 36] == list(cfg.class_dependent_convs)
    assert dict((n, a) for n, a, _ in report.mismatched)["layers.29.conv.weight"] == (21, 512, 1, 1)


def test_backbone_only_file_reports_the_uninitialised_layers(tmp_path):
    cfg = parse_cfg("yolov4", classes=2)
    state = random_state(cfg, 5)
    path = tmp_path / "yolov4.conv.137"
    write_darknet_weights(path, cfg, state, last_layer=136)
    network = DarknetYolo(cfg)
    before = snapshot(network)
    report = load_weights(network, path, strict=True)
    assert report.absent_layers == list(range(137, 162))
    assert report.uninitialised_layers == [layer.index for layer in cfg.conv_layers if layer.index >= 137]
    assert report.source_classes is None
    after = snapshot(network)
    for name, value in after.items():
        layer = int(name.split(".")[1])
        if layer <= 136:
            np.testing.assert_array_equal(value, state[name], err_msg=name)
        else:
            np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_truncated_mid_layer_is_refused_with_the_nearest_layer(weights_factory, tmp_path):
    source = weights_factory("yolov4-tiny", 2)
    data = source.read_bytes()
    cut = tmp_path / "cut.weights"
    cut.write_bytes(data[: 20 + (len(data) - 20) // 8 * 4])  # half the values, still whole floats
    with pytest.raises(WeightsError, match="truncated or written for another cfg") as info:
        read_darknet_weights(cut, parse_cfg("yolov4-tiny", classes=2))
    assert str(cut) in str(info.value) and "last complete layer would be" in str(info.value)


def test_weights_of_another_cfg_are_refused(weights_factory):
    with pytest.raises(WeightsError, match="full yolov4 file"):
        read_darknet_weights(weights_factory("yolov4-tiny", 2), parse_cfg("yolov4", classes=2))


@pytest.mark.parametrize("content, message", [
    (b"\x00" * 7, "too short"),
    (b"\xff" * 64, "not a Darknet .weights file"),
    (np.array([0, 2, 5, 0, 0], "<i4").tobytes() + b"\x00\x00", "whole number of float32"),
])
def test_bad_weights_files(tmp_path, content, message):
    path = tmp_path / "bad.weights"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        read_darknet_weights(path, parse_cfg("yolov4-tiny"))


def test_strict_refusal_assigns_nothing(weights_factory, tmp_path):
    """An 80-class file into a 2-class net with nothing expected new: refused, and no parameter changed."""
    network = DarknetYolo(parse_cfg("yolov4-tiny", classes=2))
    before = snapshot(network)
    with pytest.raises(WeightsError, match="strict load refused, nothing was assigned"):
        load_weights(network, weights_factory("yolov4-tiny", 80), strict=True, expected_new_layers=())
    for name, value in snapshot(network).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_checkpoint_round_trip_under_canonical_names(weights_factory, tmp_path):
    cfg = parse_cfg("yolov4-tiny", classes=2)
    source = DarknetYolo(cfg)
    load_weights(source, weights_factory("yolov4-tiny", 2, seed=7), strict=True)
    path = tmp_path / "model.ckpt"
    save_checkpoint(source, path, {"epoch": 3})
    target = DarknetYolo(cfg)
    report = load_weights(target, path, strict=True, expected_new_layers=())
    assert not report.missing and not report.unexpected
    expected = snapshot(source)
    for name, value in snapshot(target).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_backbone_checkpoint_under_another_naming_scheme_needs_a_name_map(weights_factory, tmp_path):
    import mindspore as ms

    cfg = parse_cfg("yolov4-tiny", classes=2)
    state = random_state(cfg, 11)
    # A foreign backbone checkpoint: layers 0..27 as `backbone.blockN.{conv,norm}.*`, plus optimiser state.
    foreign = []
    for name, value in state.items():
        layer = int(name.split(".")[1])
        if layer > 27:
            continue
        renamed = f"backbone.block{layer}." + name.split(".", 2)[2].replace("bn.", "norm.")
        foreign.append({"name": renamed, "data": ms.Tensor(value)})
        foreign.append({"name": "moments." + renamed, "data": ms.Tensor(np.zeros_like(value))})
    path = tmp_path / "backbone.ckpt"
    ms.save_checkpoint(foreign, str(path))

    # Without a map nothing matches: a clear error, not a guess.
    with pytest.raises(WeightsError, match="no tensor matches"):
        load_weights(DarknetYolo(cfg), path, strict=False)

    name_map = tmp_path / "map.yaml"
    name_map.write_text(
        "description: foreign backbone\n"
        "covers_layers: [0, 27]\n"
        "drop: ['moments\\..*']\n"
        "rules:\n"
        "  - ['backbone\\.block(\\d+)\\.norm\\.(.*)', 'layers.\\1.bn.\\2']\n"
        "  - ['backbone\\.block(\\d+)\\.conv\\.(.*)', 'layers.\\1.conv.\\2']\n")
    network = DarknetYolo(cfg)
    report = load_weights(network, path, strict=True, name_map=str(name_map))
    assert report.uninitialised_layers == [28, 29, 32, 35, 36]
    values = snapshot(network)
    for name, value in state.items():
        if int(name.split(".")[1]) <= 27:
            np.testing.assert_array_equal(values[name], value, err_msg=name)

    # The same map without `covers_layers`: strict refuses, since the neck is missing too.
    partial = tmp_path / "partial.yaml"
    partial.write_text("\n".join(l for l in name_map.read_text().splitlines() if not l.startswith("covers")))
    with pytest.raises(WeightsError, match="strict load refused"):
        load_weights(DarknetYolo(cfg), path, strict=True, name_map=str(partial))


def test_checkpoint_of_another_architecture_is_refused(weights_factory, tmp_path):
    tiny = DarknetYolo(parse_cfg("yolov4-tiny", classes=2))
    path = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny, path)
    full = DarknetYolo(parse_cfg("yolov4", classes=2))
    with pytest.raises(WeightsError, match="strict load refused") as info:
        load_weights(full, path, strict=True)
    assert str(path) in str(info.value)


def test_a_checkpoint_of_a_network_that_ends_earlier_leaves_only_the_layers_after_it_new(tmp_path):
    """yolov4-tiny's checkpoint into yolov4-tiny-3l (the same first 37 layers, then a head at stride 8): every
    tensor of the shared layers loads; the third head's layers and the class-dependent convs are new."""
    tiny = DarknetYolo(parse_cfg("yolov4-tiny-half", classes=2))
    path = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny, path)
    three = DarknetYolo(parse_cfg("yolov4-tiny-3l-half", classes=4))
    report = load_weights(three, path, strict=True)
    assert report.uninitialised_layers == [29, 36, 39, 42, 43]
    assert any("checkpoint ends at layer 36: layers 37..44 are not in it" in note for note in report.notes)
    loaded = snapshot(three)
    for name, value in snapshot(tiny).items():
        if int(name.split(".")[1]) not in (29, 36):
            np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_bad_name_map_names_the_rule(tmp_path, weights_factory):
    tiny = DarknetYolo(parse_cfg("yolov4-tiny", classes=2))
    path = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny, path)
    bad = tmp_path / "map.yaml"
    bad.write_text("rules:\n  - ['(unclosed', 'x']\n")
    with pytest.raises(WeightsError, match=r"rules\[0\]: bad regex"):
        load_weights(tiny, path, name_map=str(bad))
