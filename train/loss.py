"""YOLOv4 loss in MindSpore: CIoU box loss, objectness BCE with an ignore threshold, class BCE.

Per head, for the candidates in (row, column, anchor) order like YoloDecode:
- box: (1 - CIoU(predicted, target)) x box weight, mean over positive candidates;
- objectness: BCE-with-logits against 1 for positives and 0 for negatives, except negatives whose predicted
  box already overlaps a ground truth with IoU above `ignore_iou` (0.7), mean over counted candidates;
- class: BCE-with-logits against the (smoothed) class targets, mean over positives and classes.
Total = (box_weight * box + obj_weight * obj + cls_weight * cls) * batch size, summed over heads (the
Ultralytics scaling, which its SGD recipe (lr 0.01, momentum 0.937) was tuned for).
"""

from __future__ import annotations

import math

from models import msenv  # noqa: F401
import mindspore as ms
from mindspore import nn, ops

from models.network import DarknetYolo, head_constants

EPS = 1e-7


def bce_with_logits(logits, targets):
    # max(x, 0) - x * t + log(1 + exp(-|x|)): stable for large |x|.
    return ops.maximum(logits, 0.0) - logits * targets + ops.log(1.0 + ops.exp(-ops.abs(logits)))


def box_iou_ciou(pred, target):
    """pred, target (..., 4) x1 y1 x2 y2 -> (iou, ciou), each (...)."""
    px1, py1, px2, py2 = pred[..., 0], pred[..., 1], pred[..., 2], pred[..., 3]
    tx1, ty1, tx2, ty2 = target[..., 0], target[..., 1], target[..., 2], target[..., 3]
    pw, ph = px2 - px1, py2 - py1 + EPS
    tw, th = tx2 - tx1, ty2 - ty1 + EPS
    inter = ops.clamp(ops.minimum(px2, tx2) - ops.maximum(px1, tx1), min=0.0) * \
        ops.clamp(ops.minimum(py2, ty2) - ops.maximum(py1, ty1), min=0.0)
    union = pw * ph + tw * th - inter + EPS
    iou = inter / union
    cw = ops.maximum(px2, tx2) - ops.minimum(px1, tx1)
    ch = ops.maximum(py2, ty2) - ops.minimum(py1, ty1)
    c2 = cw * cw + ch * ch + EPS
    rho2 = ((tx1 + tx2 - px1 - px2) ** 2 + (ty1 + ty2 - py1 - py2) ** 2) / 4.0
    v = (4.0 / (math.pi ** 2)) * (ops.atan(tw / th) - ops.atan(pw / ph)) ** 2
    alpha = ops.stop_gradient(v / (v - iou + (1.0 + EPS)))
    return iou, iou - (rho2 / c2 + v * alpha)


def pairwise_iou(pred, gt):
    """pred (N, K, 4), gt (N, M, 4) -> (N, K, M)."""
    p = ops.expand_dims(pred, 2)
    g = ops.expand_dims(gt, 1)
    inter = ops.clamp(ops.minimum(p[..., 2], g[..., 2]) - ops.maximum(p[..., 0], g[..., 0]), min=0.0) * \
        ops.clamp(ops.minimum(p[..., 3], g[..., 3]) - ops.maximum(p[..., 1], g[..., 1]), min=0.0)
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    return inter / (area_p + area_g - inter + EPS)


class YoloLoss(nn.Cell):
    """`construct(images, gt_boxes, *targets)` -> scalar loss; also usable as the network-with-loss cell of
    `nn.TrainOneStepCell`. `last_terms` is not kept in graph mode; use `terms()` for logging."""

    def __init__(self, network: DarknetYolo, ignore_iou: float = 0.7, box_weight: float = 0.05,
                 obj_weight: float = 1.0, cls_weight: float = 0.5):
        super().__init__()
        self.network = network
        cfg = network.cfg
        self.classes = cfg.classes
        self.heads = tuple((len(h.mask), float(h.stride), float(h.scale_x_y)) for h in cfg.heads)
        constants = head_constants(cfg)
        self.grids = tuple(ms.Tensor(g[None]) for g, _ in constants)
        self.anchors = tuple(ms.Tensor(a[None]) for _, a in constants)
        self.ignore_iou = ignore_iou
        self.weights = (box_weight, obj_weight, cls_weight)

    def head_terms(self, i, raw, target, gt_boxes):
        a, stride, scale = self.heads[i]
        n, _, h, w = raw.shape
        p = ops.reshape(raw, (-1, a, 5 + self.classes, h, w))
        p = ops.transpose(p, (0, 3, 4, 1, 2))
        p = ops.reshape(p, (-1, h * w * a, 5 + self.classes))
        t = ops.reshape(target, (-1, h * w * a, 6 + self.classes))
        xy = (ops.sigmoid(p[:, :, 0:2]) * scale - (scale - 1.0) * 0.5 + self.grids[i]) * stride
        wh = ops.exp(ops.clamp(p[:, :, 2:4], max=8.0)) * self.anchors[i]
        pred = ops.concat((xy - wh * 0.5, xy + wh * 0.5), 2)
        positive = t[:, :, 4]
        n_pos = ops.maximum(positive.sum(), 1.0)
        _, ciou = box_iou_ciou(pred, t[:, :, 0:4])
        box = ((1.0 - ciou) * t[:, :, 5] * positive).sum() / n_pos
        best = ops.stop_gradient(pairwise_iou(pred, gt_boxes).max(axis=2))
        counted = ops.maximum(positive, ops.cast(best < self.ignore_iou, ms.float32))
        obj = (bce_with_logits(p[:, :, 4], positive) * counted).sum() / ops.maximum(counted.sum(), 1.0)
        cls = (bce_with_logits(p[:, :, 5:], t[:, :, 6:]).sum(axis=2) * positive).sum() / (n_pos * self.classes)
        return box, obj, cls

    def terms(self, images, gt_boxes, *targets):
        raw = self.network(images)
        box = obj = cls = 0.0
        for i in range(len(self.heads)):
            b, o, c = self.head_terms(i, raw[i], targets[i], gt_boxes)
            box = box + b
            obj = obj + o
            cls = cls + c
        return box, obj, cls

    def construct(self, images, gt_boxes, *targets):
        box, obj, cls = self.terms(images, gt_boxes, *targets)
        batch = images.shape[0]
        return (self.weights[0] * box + self.weights[1] * obj + self.weights[2] * cls) * batch


class L2SPLoss(nn.Cell):
    """L2-SP (Li, Grandvalet, Davoine, ICML 2018): the detection loss plus alpha/2 * ||w - w0||^2 over the weights
    that came from the pretrained model (w0 their starting values), which then get no ordinary weight decay:
    they may move, but are pulled back towards what was learnt before rather than towards zero."""

    def __init__(self, loss: nn.Cell, weights: list, references: list, alpha: float):
        super().__init__()
        self.loss = loss
        self.pulled = ms.ParameterTuple(weights)
        self.references = ms.ParameterTuple([ms.Parameter(ms.Tensor(value), name=f"l2sp_reference.{index}",
                                                          requires_grad=False)
                                             for index, value in enumerate(references)])
        self.half_alpha = alpha / 2.0

    def penalty(self):
        total = 0.0
        for weight, reference in zip(self.pulled, self.references):
            total = total + ops.reduce_sum(ops.square(weight - reference))
        return total

    def construct(self, images, gt_boxes, *targets):
        return self.loss(images, gt_boxes, *targets) + self.half_alpha * self.penalty()
