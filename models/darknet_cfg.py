"""Darknet cfg parsing: the network description that the MindSpore network, the weight importer and the
ModelSpec all derive from.

The parser resolves every `[route]`/`[shortcut]` reference to absolute layer indices, computes the output
shape of every layer, and can rewrite the class count (the conv before each `[yolo]` then gets
`(5 + classes) * len(mask)` filters), so that every consumer sees one consistent, validated description.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any, Optional, Sequence, Union

from models.errors import CfgError

BUILTIN_DIR = pathlib.Path(__file__).resolve().parent / "darknet"
SUPPORTED = ("convolutional", "route", "shortcut", "upsample", "maxpool", "yolo")
ACTIVATIONS = ("linear", "leaky", "mish", "logistic", "relu")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One Darknet layer after resolution; `index` is its position in the layer list (the [net] block excluded)."""

    index: int
    kind: str
    options: dict[str, str]
    out_channels: int
    out_height: int
    out_width: int
    # Absolute indices of the layers this one reads (empty: the previous layer).
    inputs: tuple[int, ...] = ()

    def get(self, key: str, default: Any = None, cast: type = str) -> Any:
        if key not in self.options:
            return default
        try:
            return cast(self.options[key])
        except ValueError as exc:
            raise CfgError(f"layer {self.index} [{self.kind}]: {key}={self.options[key]!r} is not a {cast.__name__}") from exc

    def ints(self, key: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.options.get(key, "").split(",") if v.strip())

    def floats(self, key: str) -> tuple[float, ...]:
        return tuple(float(v) for v in self.options.get(key, "").split(",") if v.strip())


@dataclasses.dataclass(frozen=True)
class YoloHead:
    """Facts of one `[yolo]` layer: which anchors it uses, its grid and the conv that feeds it."""

    layer_index: int
    conv_index: int
    mask: tuple[int, ...]
    stride: int
    scale_x_y: float
    grid_height: int
    grid_width: int


@dataclasses.dataclass(frozen=True)
class DarknetCfg:
    """A parsed, resolved Darknet network for a given input size and class count."""

    name: str
    source: str
    net: dict[str, str]
    layers: tuple[Layer, ...]
    height: int
    width: int
    classes: int
    anchors: tuple[tuple[float, float], ...]

    @property
    def heads(self) -> tuple[YoloHead, ...]:
        heads = []
        for layer in self.layers:
            if layer.kind != "yolo":
                continue
            conv = self.layers[layer.index - 1]
            heads.append(
                YoloHead(
                    layer_index=layer.index,
                    conv_index=conv.index,
                    mask=layer.ints("mask"),
                    stride=self.height // conv.out_height,
                    scale_x_y=layer.get("scale_x_y", 1.0, float),
                    grid_height=conv.out_height,
                    grid_width=conv.out_width,
                )
            )
        return tuple(heads)

    @property
    def conv_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.kind == "convolutional")

    @property
    def class_dependent_convs(self) -> tuple[int, ...]:
        """Indices of the convs whose filter count depends on the class count (the head convs)."""
        return tuple(head.conv_index for head in self.heads)


def resolve_cfg_path(cfg: str | pathlib.Path) -> pathlib.Path:
    """A cfg file path, or the name of a bundled one (`yolov4`, `yolov4-tiny`)."""
    path = pathlib.Path(cfg)
    if path.is_file():
        return path
    builtin = BUILTIN_DIR / (path.name if path.suffix == ".cfg" else f"{path.name}.cfg")
    if builtin.is_file() and not path.parent.parts:
        return builtin
    names = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.cfg")))
    raise CfgError(f"{cfg}: no such cfg file, and not a bundled cfg name (bundled: {names})")


def _read_sections(path: pathlib.Path) -> list[tuple[str, dict[str, str], int]]:
    sections: list[tuple[str, dict[str, str], int]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            sections.append((header.group(1), {}, number))
            continue
        if "=" not in line or not sections:
            raise CfgError(f"{path}:{number}: expected '[section]' or 'key=value', got {raw!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        sections[-1][1][key] = value
    if not sections or sections[0][0] not in ("net", "network"):
        raise CfgError(f"{path}: the first section must be [net]")
    return sections


def parse_cfg(
    cfg: Union[str, pathlib.Path],
    classes: Optional[int] = None,
    height: Optional[int] = None,
    width: Optional[int] = None,
    anchors: Optional[Sequence[Sequence[float]]] = None,
) -> DarknetCfg:
    """Parse and resolve a cfg. `classes`, `height`, `width` and `anchors` ((w, h) pairs in input pixels, as many
    as the file's: models/anchors.py fits them to a data set) override the file's values."""
    path = resolve_cfg_path(cfg)
    sections = _read_sections(path)
    net = sections[0][1]
    height = int(height if height is not None else net.get("height", 416))
    width = int(width if width is not None else net.get("width", 416))
    classes, file_anchors = _classes_and_anchors(path, sections, classes)
    if anchors is None:
        anchors = file_anchors
    else:
        anchors = tuple((float(w), float(h)) for w, h in anchors)
        if len(anchors) != len(file_anchors) or min(min(pair) for pair in anchors) <= 0:
            raise CfgError(f"{path}: anchors: expected {len(file_anchors)} positive (w, h) pairs (the cfg's count), "
                           f"got {[list(a) for a in anchors]}")
        text = ", ".join(f"{w:g},{h:g}" for w, h in anchors)
        sections = [(kind, dict(opts, anchors=text) if kind == "yolo" else opts, line) for kind, opts, line in sections]
    _check_input_size(path, sections[1:], height, width)
    layers = _resolve_layers(path, sections[1:], int(net.get("channels", 3)), height, width, classes, anchors)
    return DarknetCfg(path.stem, str(path), net, tuple(layers), height, width, classes, anchors)


def _classes_and_anchors(path: pathlib.Path, sections, classes: Optional[int]):
    """The class count (the override, else the [yolo] layers' common value) and the anchors, validated."""
    yolo_sections = [opts for kind, opts, _ in sections if kind == "yolo"]
    if not yolo_sections:
        raise CfgError(f"{path}: no [yolo] layer")
    file_classes = {int(opts.get("classes", 80)) for opts in yolo_sections}
    if len(file_classes) != 1:
        raise CfgError(f"{path}: [yolo] layers disagree on classes: {sorted(file_classes)}")
    classes = int(classes if classes is not None else file_classes.pop())
    if classes < 1:
        raise CfgError(f"{path}: classes must be >= 1, got {classes}")
    values = [float(v) for v in yolo_sections[0].get("anchors", "").split(",") if v.strip()]
    if not values or len(values) % 2:
        raise CfgError(f"{path}: [yolo] anchors must be a non-empty list of w,h pairs")
    return classes, tuple(zip(values[0::2], values[1::2]))


def _check_input_size(path: pathlib.Path, layer_sections, height: int, width: int) -> None:
    """The input must be a multiple of the deepest head's stride: said plainly here, before it shows up as a
    route between layers of different sizes. Strides follow the layers (conv and maxpool multiply, upsample
    divides, route takes its first input's, the rest keep the previous one's)."""
    strides: list[float] = []
    for index, (kind, opts, line) in enumerate(layer_sections):
        previous = strides[-1] if strides else 1.0
        if kind in ("convolutional", "maxpool"):
            stride = previous * int(opts.get("stride", 1))
        elif kind == "upsample":
            stride = previous / int(opts.get("stride", 2))
        elif kind == "route":
            first = int(opts.get("layers", "-1").split(",")[0])
            reference = index + first if first < 0 else first
            stride = strides[reference] if 0 <= reference < index else previous  # a bad reference: reported later
        else:
            stride = previous
        strides.append(stride)
    heads = [strides[i] for i, (kind, _, _) in enumerate(layer_sections) if kind == "yolo"]
    deepest = int(max(heads)) if heads else 1
    if height % deepest or width % deepest or height < deepest or width < deepest:
        raise CfgError(f"{path}: input {height}x{width} is not a multiple of the deepest stride {deepest}")


@dataclasses.dataclass
class _Step:
    """What resolving one layer needs: where it is, its options, the layers so far, the shape flowing in."""

    where: str
    index: int
    options: dict
    layers: list
    following: list  # the sections after this one (a conv before a [yolo] takes its filters from the head)
    channels: int
    height: int
    width: int
    classes: int
    anchors: tuple


def _resolve_layers(path, layer_sections, channels, height, width, classes, anchors) -> list:
    layers: list[Layer] = []
    shape = (channels, height, width)
    for position, (kind, opts, line) in enumerate(layer_sections):
        index = len(layers)
        where = f"{path}:{line}: layer {index} [{kind}]"
        if kind not in SUPPORTED:
            raise CfgError(f"{where}: unsupported layer type (supported: {', '.join(SUPPORTED)})")
        step = _Step(where, index, dict(opts), layers, layer_sections[position + 1:], *shape, classes, anchors)
        inputs, shape = _RESOLVERS[kind](step)
        if shape[1] < 1 or shape[2] < 1:
            raise CfgError(f"{where}: input {height}x{width} is too small (output {shape[1]}x{shape[2]})")
        layers.append(Layer(index, kind, step.options, shape[0], shape[1], shape[2], inputs))
    return layers


def _convolutional(step: _Step):
    opts = step.options
    size, stride = int(opts.get("size", 1)), int(opts.get("stride", 1))
    pad = size // 2 if int(opts.get("pad", 0)) else int(opts.get("padding", 0))
    groups = int(opts.get("groups", 1))
    activation = opts.get("activation", "logistic")
    if activation not in ACTIVATIONS:
        raise CfgError(f"{step.where}: activation {activation!r} not supported ({', '.join(ACTIVATIONS)})")
    if step.channels % groups:
        raise CfgError(f"{step.where}: {step.channels} input channels are not divisible by groups={groups}")
    if step.following and step.following[0][0] == "yolo":  # a head conv: its filters follow the class count
        mask = [int(v) for v in step.following[0][1].get("mask", "").split(",") if v.strip()]
        opts["filters"] = str((5 + step.classes) * len(mask))
        opts["classes"] = str(step.classes)
    filters = int(opts["filters"]) if "filters" in opts else None
    if not filters:
        raise CfgError(f"{step.where}: filters missing or zero")
    return (), (filters, (step.height + 2 * pad - size) // stride + 1, (step.width + 2 * pad - size) // stride + 1)


def _maxpool(step: _Step):
    # Darknet's defaults: stride 1, size = stride, padding = size - 1 (split as floor/ceil).
    stride = int(step.options.get("stride", 1))
    size = int(step.options.get("size", stride))
    padding = int(step.options.get("padding", size - 1))
    return (), (step.channels, (step.height + padding - size) // stride + 1, (step.width + padding - size) // stride + 1)


def _upsample(step: _Step):
    stride = int(step.options.get("stride", 2))
    return (), (step.channels, step.height * stride, step.width * stride)


def _shortcut(step: _Step):
    source = _absolute(int(step.options["from"]), step.index, step.where)
    src = step.layers[source]
    if (src.out_channels, src.out_height, src.out_width) != (step.channels, step.height, step.width):
        raise CfgError(f"{step.where}: shortcut from layer {source} has another shape")
    if step.options.get("activation", "linear") != "linear":
        raise CfgError(f"{step.where}: only linear shortcut activation is supported")
    return (step.index - 1, source), (step.channels, step.height, step.width)


def _route(step: _Step):
    layers = step.layers
    inputs = tuple(_absolute(int(v), step.index, step.where) for v in step.options["layers"].split(",") if v.strip())
    shapes = {(layers[i].out_height, layers[i].out_width) for i in inputs}
    if len(shapes) != 1:
        raise CfgError(f"{step.where}: routed layers {inputs} have different spatial sizes {sorted(shapes)}")
    groups, group_id = int(step.options.get("groups", 1)), int(step.options.get("group_id", 0))
    total = sum(layers[i].out_channels for i in inputs)
    if total % groups or not 0 <= group_id < groups:
        raise CfgError(f"{step.where}: groups={groups} group_id={group_id} do not split {total} channels")
    out_h, out_w = shapes.pop()
    return inputs, (total // groups, out_h, out_w)


def _yolo(step: _Step):
    mask = [int(v) for v in step.options.get("mask", "").split(",") if v.strip()]
    if not mask or max(mask) >= len(step.anchors):
        raise CfgError(f"{step.where}: mask {mask} does not index the {len(step.anchors)} anchors")
    if step.channels != (5 + step.classes) * len(mask):
        raise CfgError(f"{step.where}: expects {(5 + step.classes) * len(mask)} channels, gets {step.channels}")
    step.options["classes"] = str(step.classes)
    return (), (step.channels, step.height, step.width)


_RESOLVERS = {"convolutional": _convolutional, "maxpool": _maxpool, "upsample": _upsample, "shortcut": _shortcut,
              "route": _route, "yolo": _yolo}


def _absolute(ref: int, index: int, where: str) -> int:
    absolute = index + ref if ref < 0 else ref
    if not 0 <= absolute < index:
        raise CfgError(f"{where}: reference {ref} does not name an earlier layer")
    return absolute


def render_cfg(cfg: DarknetCfg) -> str:
    """The resolved cfg as Darknet text (class count, head filters and input size applied), for OpenCV's
    importer and for the copy written beside an exported model."""
    net = dict(cfg.net, width=str(cfg.width), height=str(cfg.height))
    lines = ["[net]"] + [f"{k}={v}" for k, v in net.items()]
    for layer in cfg.layers:
        lines += ["", f"[{layer.kind}]"] + [f"{k}={v}" for k, v in layer.options.items()]
    return "\n".join(lines) + "\n"


def backbone_end(cfg: DarknetCfg) -> int:
    """First layer index after the backbone: what `freeze_layers` freezes to keep the backbone. YOLOv4: the
    three convs before SPP's first stride-1 maxpool belong to the neck, so the backbone ends there (layer 104
    is CSPDarknet53's last); a cfg without SPP (YOLOv4-tiny): three layers before the first class-dependent
    head conv."""
    first_head = min(cfg.class_dependent_convs)
    for layer in cfg.layers:
        if layer.kind == "maxpool" and layer.get("stride", 1, int) == 1:
            return min(layer.index - 3, first_head)
    return first_head - 3 if first_head > 3 else first_head
