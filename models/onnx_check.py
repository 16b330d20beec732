"""Pre-flight checks of an ONNX model for `atc`, reporting every offending node by name.

`atc` fails late and cryptically on three recurring problems (../shared/reference/README.md, "atc"): an opset
above 11, `Resize`/`Upsample` whose scales or sizes are computed at run time, and operators it cannot place.
The allow-list below is deliberately conservative: the ONNX opset-11 operators that Ascend's ONNX parser
documents for the Ascend 310 and that YOLO-family detectors use. An operator outside it is reported, not
guessed about; extend the list when a conversion on a real box has shown the operator converts.
"""

from __future__ import annotations

import dataclasses

ATC_OPSET = 11
ATC_ALLOWED_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "ConvTranspose",
    "Div", "Exp", "Flatten", "Gather", "GlobalAveragePool", "Greater", "Identity", "LeakyRelu", "Less", "Log",
    "MatMul", "Max", "MaxPool", "Min", "Mul", "Pad", "Pow", "ReduceMax", "ReduceMean", "Relu", "Reshape",
    "Resize", "Sigmoid", "Slice", "Softmax", "Softplus", "Split", "Sqrt", "Squeeze", "Sub", "Tanh",
    "Transpose", "Unsqueeze", "Upsample", "Where",
})


@dataclasses.dataclass(frozen=True)
class OnnxProblem:
    node: str
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"node {self.node!r} ({self.op_type}): {self.reason}"


def constant_names(graph) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def check_onnx_for_atc(model) -> list[OnnxProblem]:
    """Every reason `atc` would refuse `model` (an onnx.ModelProto), one entry per node; empty when clean."""
    problems: list[OnnxProblem] = []
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    if opsets.get("ai.onnx") != ATC_OPSET:
        problems.append(OnnxProblem("<model>", "opset_import", f"opset {opsets.get('ai.onnx')} is not {ATC_OPSET}"))
    constants = constant_names(model.graph)
    for index, node in enumerate(model.graph.node):
        name = node.name or f"#{index}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(OnnxProblem(name, node.op_type, f"custom domain {node.domain!r}"))
        elif node.op_type not in ATC_ALLOWED_OPS:
            problems.append(OnnxProblem(name, node.op_type, "operator not in the atc allow-list"))
        if node.op_type in ("Resize", "Upsample"):
            # Resize inputs: X, roi, scales, sizes; Upsample: X, scales. Empty names are absent inputs.
            shape_inputs = [i for i in node.input[1:] if i]
            if node.op_type == "Resize":
                shape_inputs = [i for i in node.input[2:] if i]
            dynamic = [i for i in shape_inputs if i not in constants]
            if dynamic:
                problems.append(OnnxProblem(name, node.op_type, f"scales/sizes computed at run time ({dynamic})"))
            elif node.op_type == "Resize" and len(node.input) > 3 and node.input[3]:
                problems.append(OnnxProblem(name, node.op_type,
                                            "constant 'sizes' fix the batch size; use constant 'scales'"))
    return problems
