"""YOLOv4 / YOLOv4-tiny in MindSpore, built layer by layer from a resolved Darknet cfg.

Parameter names follow the cfg's layer indices (`layers.<i>.conv.weight`, `layers.<i>.bn.gamma`, ...), so a
Darknet `.weights` file, a report of missing tensors and a frozen-layer setting all speak of the same layer
numbers as the cfg. The network returns the raw head tensors (N, A*(5+C), H, W), one per `[yolo]` layer;
`YoloDecode` turns them into boxes and scores and is part of the exported graph.

Operators are chosen so that the graph exports to ONNX opset 11 for `atc`: Mish is written as
`x * tanh(softplus(x))` and upsampling uses the `ResizeNearestNeighbor` primitive with a static size
(`nn.Mish`, `nn.Upsample` and `ops.interpolate` are refused by the ONNX exporter).
"""

from __future__ import annotations

import numpy as np

from models import msenv  # noqa: F401  (must precede the MindSpore import)
import mindspore as ms
from mindspore import nn, ops

from models.darknet_cfg import DarknetCfg, Layer

# Darknet's BatchNorm epsilon (normalize_cpu adds .00001 to the variance); OpenCV's importer uses the same.
BN_EPS = 1e-5
# MindSpore convention: moving = momentum * moving + (1 - momentum) * batch. 0.97 as in Ultralytics' YOLO
# recipes; Darknet's 0.99 adapts too slowly for the few hundred images of an inspection data set.
BN_MOMENTUM = 0.97


class Mish(nn.Cell):
    def construct(self, x):
        return x * ops.tanh(ops.softplus(x))


class LeakyReLU(nn.Cell):
    """Darknet's leaky activation (slope 0.1)."""

    def construct(self, x):
        return ops.maximum(x, x * 0.1)


def _activation(name: str) -> nn.Cell | None:
    return {
        "linear": None,
        "leaky": LeakyReLU(),
        "mish": Mish(),
        "logistic": nn.Sigmoid(),
        "relu": nn.ReLU(),
    }[name]


class ConvLayer(nn.Cell):
    def __init__(self, layer: Layer, in_channels: int):
        super().__init__()
        size = layer.get("size", 1, int)
        pad = size // 2 if layer.get("pad", 0, int) else layer.get("padding", 0, int)
        self.use_bn = bool(layer.get("batch_normalize", 0, int))
        self.conv = nn.Conv2d(
            in_channels,
            layer.out_channels,
            size,
            stride=layer.get("stride", 1, int),
            pad_mode="pad",
            padding=pad,
            group=layer.get("groups", 1, int),
            has_bias=not self.use_bn,
            weight_init="HeUniform",
            bias_init="zeros",
        )
        self.bn = nn.BatchNorm2d(layer.out_channels, eps=BN_EPS, momentum=BN_MOMENTUM) if self.use_bn else None
        self.act = _activation(layer.get("activation", "logistic"))

    def construct(self, x, outputs):
        x = self.conv(x)
        if self.use_bn:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


class RouteLayer(nn.Cell):
    def __init__(self, layer: Layer):
        super().__init__()
        self.inputs = layer.inputs
        self.groups = layer.get("groups", 1, int)
        self.group_id = layer.get("group_id", 0, int)
        self.channels = layer.out_channels

    def construct(self, x, outputs):
        if len(self.inputs) == 1:
            y = outputs[self.inputs[0]]
        else:
            y = ops.concat([outputs[i] for i in self.inputs], 1)
        if self.groups > 1:
            start = self.group_id * self.channels
            y = y[:, start:start + self.channels]
        return y


class ShortcutLayer(nn.Cell):
    def __init__(self, layer: Layer):
        super().__init__()
        self.source = layer.inputs[1]

    def construct(self, x, outputs):
        return x + outputs[self.source]


class UpsampleLayer(nn.Cell):
    def __init__(self, layer: Layer):
        super().__init__()
        self.resize = ops.ResizeNearestNeighbor((layer.out_height, layer.out_width))

    def construct(self, x, outputs):
        return self.resize(x)


class MaxPoolLayer(nn.Cell):
    """Darknet maxpool: padding `size - 1` split floor/ceil (left/top get the floor), out-of-image ignored.

    The two shapes YOLOv4 uses map to ONNX-exportable pools: stride 1 with an odd size (SPP) is SAME padding,
    size 2 stride 2 on an even input needs no padding. Any other shape pads explicitly, which MindSpore's ONNX
    exporter refuses (PadV3): such a cfg trains and exports to MINDIR, not to ONNX.
    """

    def __init__(self, layer: Layer, in_height: int, in_width: int):
        super().__init__()
        stride = layer.get("stride", 1, int)
        size = layer.get("size", stride, int)
        padding = layer.get("padding", size - 1, int)
        before = padding // 2
        after_h = (layer.out_height - 1) * stride + size - in_height - before
        after_w = (layer.out_width - 1) * stride + size - in_width - before
        self.paddings = (before, max(after_w, 0), before, max(after_h, 0))  # left, right, top, bottom
        if stride == 1 and size % 2 == 1 and padding == size - 1:
            self.needs_pad = False
            self.pool = nn.MaxPool2d(kernel_size=size, stride=1, pad_mode="same")
        else:
            self.needs_pad = any(self.paddings)
            self.pool = nn.MaxPool2d(kernel_size=size, stride=stride, pad_mode="valid")

    def construct(self, x, outputs):
        if self.needs_pad:
            x = ops.pad(x, self.paddings, mode="constant", value=-1e9)
        return self.pool(x)


class Identity(nn.Cell):
    def construct(self, x, outputs):
        return x


class DarknetYolo(nn.Cell):
    """The network of a Darknet cfg. `construct(images)` -> tuple of raw head tensors, one per [yolo] layer."""

    def __init__(self, cfg: DarknetCfg):
        super().__init__()
        self.cfg = cfg
        cells = []
        prev_c, prev_h, prev_w = int(cfg.net.get("channels", 3)), cfg.height, cfg.width
        for layer in cfg.layers:
            if layer.kind == "convolutional":
                cells.append(ConvLayer(layer, prev_c))
            elif layer.kind == "route":
                cells.append(RouteLayer(layer))
            elif layer.kind == "shortcut":
                cells.append(ShortcutLayer(layer))
            elif layer.kind == "upsample":
                cells.append(UpsampleLayer(layer))
            elif layer.kind == "maxpool":
                cells.append(MaxPoolLayer(layer, prev_h, prev_w))
            else:  # yolo: decoding is YoloDecode's job
                cells.append(Identity())
            prev_c, prev_h, prev_w = layer.out_channels, layer.out_height, layer.out_width
        self.layers = nn.CellList(cells)
        self.head_indices = tuple(head.conv_index for head in cfg.heads)

    def construct(self, x):
        outputs = ()
        for layer in self.layers:
            x = layer(x, outputs)
            outputs = outputs + (x,)
        return tuple(outputs[i] for i in self.head_indices)


def head_constants(cfg: DarknetCfg) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per head: grid offsets and anchor sizes, (H*W*A, 2) each, candidates ordered (row, column, anchor) as in
    OpenCV's region layer."""
    constants = []
    for head in cfg.heads:
        a = len(head.mask)
        ys, xs = np.meshgrid(np.arange(head.grid_height), np.arange(head.grid_width), indexing="ij")
        grid = np.stack([xs, ys], axis=-1).astype(np.float32)[:, :, None, :]
        grid = np.broadcast_to(grid, (head.grid_height, head.grid_width, a, 2)).reshape(-1, 2)
        anchors = np.array([cfg.anchors[m] for m in head.mask], dtype=np.float32)
        anchors = np.broadcast_to(anchors, (head.grid_height, head.grid_width, a, 2)).reshape(-1, 2)
        constants.append((np.ascontiguousarray(grid), np.ascontiguousarray(anchors)))
    return constants


class YoloDecode(nn.Cell):
    """Raw head tensors -> (boxes, scores[, objectness]).

    boxes: (N, K, 4) float32, x1 y1 x2 y2 in model-input pixels; scores: (N, K, C) = sigmoid(obj) * sigmoid(cls);
    objectness: (N, K, 1). K = sum over heads of H * W * A, ordered head by head, then (row, column, anchor).
    Box centre: (sigmoid(t) * s - (s - 1) / 2 + grid) * stride with s = scale_x_y; size: exp(t) * anchor.
    """

    def __init__(self, cfg: DarknetCfg, with_objectness: bool = False):
        super().__init__()
        self.with_objectness = with_objectness
        self.classes = cfg.classes
        self.heads = tuple((len(h.mask), float(h.stride), float(h.scale_x_y)) for h in cfg.heads)
        constants = head_constants(cfg)
        # Constants, not Parameters: they must not appear in checkpoints.
        self.grids = tuple(ms.Tensor(g[None]) for g, _ in constants)
        self.anchors = tuple(ms.Tensor(a[None]) for _, a in constants)

    def construct(self, raw):
        boxes = []
        scores = []
        objs = []
        for i in range(len(self.heads)):
            a, stride, scale = self.heads[i]
            p = raw[i]
            n, _, h, w = p.shape
            p = ops.reshape(p, (-1, a, 5 + self.classes, h, w))
            p = ops.transpose(p, (0, 3, 4, 1, 2))
            p = ops.reshape(p, (-1, h * w * a, 5 + self.classes))
            xy = (ops.sigmoid(p[:, :, 0:2]) * scale - (scale - 1.0) * 0.5 + self.grids[i]) * stride
            wh = ops.exp(p[:, :, 2:4]) * self.anchors[i]
            obj = ops.sigmoid(p[:, :, 4:5])
            boxes.append(ops.concat((xy - wh * 0.5, xy + wh * 0.5), 2))
            scores.append(obj * ops.sigmoid(p[:, :, 5:]))
            objs.append(obj)
        if self.with_objectness:
            return ops.concat(boxes, 1), ops.concat(scores, 1), ops.concat(objs, 1)
        return ops.concat(boxes, 1), ops.concat(scores, 1)


class DecodedYolo(nn.Cell):
    """Network plus decode: the graph that is exported for the NPU."""

    def __init__(self, network: DarknetYolo, with_objectness: bool = False):
        super().__init__()
        self.network = network
        self.decode = YoloDecode(network.cfg, with_objectness)

    def construct(self, x):
        return self.decode(self.network(x))
