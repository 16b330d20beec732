import pytest

from models.darknet_cfg import parse_cfg, render_cfg
from models.errors import CfgError

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


@pytest.mark.parametrize("name, layers, convs, strides", [
    ("yolov4", 162, 110, (8, 16, 32)),
    ("yolov4-tiny", 38, 21, (32, 16)),
])
def test_bundled_cfgs_resolve(name, layers, convs, strides):
    cfg = parse_cfg(name, classes=2, height=416, width=416)
    assert len(cfg.layers) == layers
    assert len(cfg.conv_layers) == convs
    assert tuple(h.stride for h in cfg.heads) == strides
    for head in cfg.heads:
        conv = cfg.layers[head.conv_index]
        assert conv.out_channels == (5 + 2) * len(head.mask)
        assert (conv.out_height, conv.out_width) == (416 // head.stride, 416 // head.stride)


@pytest.mark.parametrize("name, scale", [
    ("yolov4-tiny-quarter", 0.25), ("yolov4-tiny-half", 0.5), ("yolov4-tiny-threequarter", 0.75),
])
def test_narrow_tinies_are_yolov4_tiny_scaled(name, scale):
    # The bundled narrow cfgs are yolov4-tiny with every width scaled but the class-dependent convs', so a
    # freeze depth, a head index or a route written for one holds for all.
    full, narrow = (parse_cfg(n, classes=3, height=160, width=160) for n in ("yolov4-tiny", name))
    assert [layer.kind for layer in narrow.layers] == [layer.kind for layer in full.layers]
    assert narrow.class_dependent_convs == full.class_dependent_convs
    for a, b in zip(full.layers, narrow.layers):
        kept = a.index in full.class_dependent_convs or a.kind == "yolo"  # a [yolo] layer: its conv's channels
        expected = a.out_channels if kept else a.out_channels * scale
        assert b.out_channels == expected, f"{name} layer {a.index}"
        assert (b.out_height, b.out_width, b.inputs) == (a.out_height, a.out_width, a.inputs)


def test_yolov4_facts_from_the_cfg():
    cfg = parse_cfg("yolov4")
    assert (cfg.height, cfg.width, cfg.classes) == (608, 608, 80)
    assert [h.scale_x_y for h in cfg.heads] == [1.2, 1.1, 1.05]
    assert cfg.anchors[0] == (12.0, 16.0) and len(cfg.anchors) == 9
    # CSPDarknet53 ends at layer 104 (1024 channels, stride 32); yolov4.conv.137 holds layers 0..136 (backbone,
    # SPP and part of PANet), all before the first class-dependent conv.
    assert cfg.layers[104].out_channels == 1024 and cfg.layers[104].out_height == 608 // 32
    assert min(cfg.class_dependent_convs) == 138


def test_tiny_route_groups_take_the_second_half():
    cfg = parse_cfg("yolov4-tiny")
    route = cfg.layers[3]
    assert route.kind == "route" and route.options["groups"] == "2"
    assert route.out_channels == cfg.layers[2].out_channels // 2


def test_rendered_cfg_parses_to_the_same_network(tmp_path):
    cfg = parse_cfg("yolov4-tiny", classes=3, height=320, width=512)
    path = tmp_path / "x.cfg"
    path.write_text(render_cfg(cfg))
    again = parse_cfg(path)
    assert (again.height, again.width, again.classes) == (320, 512, 3)
    assert [(l.kind, l.out_channels, l.out_height, l.out_width) for l in again.layers] == \
        [(l.kind, l.out_channels, l.out_height, l.out_width) for l in cfg.layers]


def test_unknown_cfg_name_lists_the_bundled_ones():
    with pytest.raises(CfgError, match="bundled: yolov4, yolov4-tiny"):
        parse_cfg("yolov9")


def test_input_size_must_fit_the_strides():
    with pytest.raises(CfgError, match="not a multiple"):
        parse_cfg("yolov4-tiny", height=400, width=416)


@pytest.mark.parametrize("text, message", [
    ("[net]\nwidth=64\nheight=64\n[dropout]\n[yolo]\nmask=0\nanchors=1,1\n", "unsupported layer type"),
    ("[net]\n[maxpool]\n", "no \\[yolo\\] layer"),
    ("[net]\n[convolutional]\nfilters=4\nsize=3\nactivation=swish\n[yolo]\nmask=0\nanchors=1,1\n", "activation 'swish'"),
    ("[net]\n[convolutional]\nfilters=4\n[route]\nlayers=-3\n[yolo]\nmask=0\nanchors=1,1\n", "earlier layer"),
    ("[net]\nwidth 64\n", "expected"),
    ("[convolutional]\nfilters=4\n", "first section must be \\[net\\]"),
])
def test_bad_cfg_names_file_and_reason(tmp_path, text, message):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(CfgError, match=message) as info:
        parse_cfg(path)
    assert str(path) in str(info.value)


def test_backbone_end_is_the_first_neck_layer():
    from models.darknet_cfg import backbone_end

    # YOLOv4: CSPDarknet53 is layers 0-104; tiny (both widths): the CSP blocks end at layer 25.
    assert backbone_end(parse_cfg("yolov4")) == 105
    assert backbone_end(parse_cfg("yolov4-tiny")) == backbone_end(parse_cfg("yolov4-tiny-half")) == 26
