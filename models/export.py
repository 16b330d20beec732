"""Export a trained network plus its ModelSpec to ONNX or MINDIR, the YOLO decode inside the graph.

Output contract (written into manifest.json as `outputs`):
- decoded (default): `boxes` (N, K, 4) float32, x1 y1 x2 y2 in model-input pixels (the letterboxed picture),
  and `scores` (N, K, C) float32 = sigmoid(objectness) * sigmoid(class logit). K candidates, ordered head by
  head (cfg order), then grid row, grid column, anchor. No threshold, no NMS: the host does those.
- raw (`--raw`): one tensor per head, `head_<i>` (N, A * (5 + C), H, W), the logits before any decode.

ONNX is written for `atc`: opset 11, input `images` (N, 3, H, W) with a symbolic batch dimension (dynamic
batch for `--dynamic_batch_size`) or a fixed one, every Resize driven by constant scales. MindSpore's ONNX
exporter traces a static batch and writes Resize with constant *sizes*, which pin the batch (its
`dynamic_axes` option leaves them, and the graph then fails at any other batch), so the graph is rewritten
after export and then checked with `models.onnx_check`.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from core.errors import UserError
from models.darknet_cfg import DarknetCfg, parse_cfg, render_cfg
from models.integrity import write_checksums
from models.spec import CFG_NAME, ModelSpec

FORMATS = ("onnx", "mindir")
INPUT_NAME = "images"


class ExportError(UserError):
    """The export could not produce a model that satisfies its contract."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    directory: str
    model_file: str
    manifest: str
    spec: ModelSpec
    self_check: dict  # output name -> its error, in that output's own measure (see compare_outputs)

    def to_dict(self) -> dict:
        return {"directory": self.directory, "model_file": self.model_file, "manifest": self.manifest,
                "format": self.spec.model_format, "outputs": self.spec.outputs, "self_check": self.self_check}


def output_contract(cfg: DarknetCfg, raw: bool, batch: int | None) -> dict:
    batch_dim = batch if batch else "batch"
    if raw:
        tensors = [{"name": f"head_{i}", "shape": [batch_dim, len(h.mask) * (5 + cfg.classes), h.grid_height,
                                                    h.grid_width], "dtype": "float32",
                    "meaning": "raw logits of [yolo] layer %d (stride %d)" % (h.layer_index, h.stride)}
                   for i, h in enumerate(cfg.heads)]
        return {"decoded": False, "tensors": tensors}
    k = sum(h.grid_height * h.grid_width * len(h.mask) for h in cfg.heads)
    return {
        "decoded": True,
        "candidate_order": "head (cfg order), grid row, grid column, anchor",
        "tensors": [
            {"name": "boxes", "shape": [batch_dim, k, 4], "dtype": "float32",
             "meaning": "x1, y1, x2, y2 in model-input pixels"},
            {"name": "scores", "shape": [batch_dim, k, cfg.classes], "dtype": "float32",
             "meaning": "sigmoid(objectness) * sigmoid(class logit), per class"},
        ],
    }


def build_network(cfg: DarknetCfg, weights: str | pathlib.Path, raw: bool = False, name_map: str | None = None):
    """The network with all weights loaded (nothing may be missing for an export), in inference mode."""
    from models.network import DarknetYolo, DecodedYolo
    from models.weights import load_weights

    network = DarknetYolo(cfg)
    # strict with no expected-new layer: an exported model with an uninitialised tensor would be garbage.
    report = load_weights(network, weights, strict=True, name_map=name_map, expected_new_layers=())
    wrapped = network if raw else DecodedYolo(network)
    wrapped.set_train(False)
    return wrapped, report


def export_model(cfg: str | pathlib.Path, weights: str | pathlib.Path, class_names: list[str], fmt: str,
                 out_dir: str | pathlib.Path, *, size: tuple[int, int] | None = None, raw: bool = False,
                 batch: int | None = None, batch_gears: tuple[int, ...] | None = None,
                 name_map: str | None = None, spec_overrides: dict | None = None,
                 anchors=None) -> ExportResult:
    """Write `model.onnx` or `model.mindir`, `manifest.json`, `network.cfg` and `labels.txt` into `out_dir`.

    batch None: dynamic batch (ONNX: symbolic dimension; MINDIR: None dimension); an int: fixed batch.
    anchors: the training's own (train/config.py `anchors`) instead of the cfg's.
    """
    from models import msenv  # noqa: F401
    import mindspore as ms

    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if batch is not None and batch < 1:
        raise ExportError(f"--batch {batch}: a fixed batch is 1 or more (leave it out for a dynamic batch)")
    if batch is not None and batch_gears and tuple(batch_gears) != (batch,):
        raise ExportError(f"--batch {batch} fixes the batch, so the only gear is {batch}; --gears "
                          f"{','.join(map(str, batch_gears))} needs a dynamic-batch export (leave --batch out)")
    height, width = size if size else (None, None)
    parsed = parse_cfg(cfg, classes=len(class_names), height=height, width=width, anchors=anchors)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ms.set_context(mode=ms.GRAPH_MODE)
    network, _ = build_network(parsed, weights, raw=raw, name_map=name_map)

    trace_batch = batch or 1
    sample = np.random.default_rng(0).random((trace_batch, 3, parsed.height, parsed.width), dtype=np.float32)
    stem = out / "model"
    if fmt == "onnx":
        import mindspore.onnx

        model_path = stem.with_suffix(".onnx")
        output_names = [t["name"] for t in output_contract(parsed, raw, batch)["tensors"]]
        mindspore.onnx.export(network, ms.Tensor(sample), file_name=str(model_path), input_names=[INPUT_NAME],
                              output_names=output_names)
        rewrite_onnx_for_atc(model_path, dynamic_batch=batch is None)
    else:
        shape = [None if batch is None else batch, 3, parsed.height, parsed.width]
        ms.export(network, ms.Tensor(shape=shape, dtype=ms.float32), file_name=str(stem), file_format="MINDIR")
        model_path = stem.with_suffix(".mindir")

    expected = [o.asnumpy() for o in _as_tuple(network(ms.Tensor(sample)))]
    from models.runtime import open_session

    session = open_session(model_path)
    got = session.run(sample)
    contract = output_contract(parsed, raw, batch)
    check = compare_outputs([t["name"] for t in contract["tensors"]], expected, got)
    failed = {name: entry for name, entry in check.items() if not entry["error"] <= entry["tolerance"]}
    if failed:
        detail = "; ".join(f"{name}: {entry['error']:.3g} {entry['measure']} (tolerance {entry['tolerance']:g})"
                           for name, entry in failed.items())
        raise ExportError(f"{model_path}: exported model differs from the network: {detail}")

    gears = batch_gears or ((batch,) if batch else None)
    kwargs = dict(spec_overrides or {})
    if gears:
        kwargs["batch_gears"] = tuple(gears)
    spec = ModelSpec.from_cfg(parsed, class_names, model_file=model_path.name, model_format=fmt,
                              outputs=output_contract(parsed, raw, batch), **kwargs)
    manifest = spec.save(out)
    (out / CFG_NAME).write_text(render_cfg(parsed), encoding="utf-8")
    (out / "labels.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")
    write_checksums(out, [model_path.name])
    return ExportResult(str(out), str(model_path), str(manifest), spec, check)


# Tolerances of the export self-check, each in the measure that matters for its output. float32 convolutions
# summed in another order (ONNX Runtime's MLAS vs MindSpore's oneDNN, and each release re-tunes its kernels)
# differ by about 1e-6 relative per layer; measured over 20-40 layers: 3e-5 of a box's size, 2e-7 on scores,
# 2e-7 on raw logits. The error grows with the activations, not with the output: a model whose training
# diverged (raw logits of 2e4, six epochs into a run of the test suite) differed by 2.8e-4 on a score whose
# logit was near 0, correctly converted. A mis-converted operator (wrong Resize mode, a dropped bias, swapped
# channels) is off by 1e-2 or more in each measure, so each tolerance stays ten times below that.
BOX_TOLERANCE = 1e-3    # of the box's own width (x) or height (y), at least 1 px
SCORE_TOLERANCE = 1e-3  # absolute, on probabilities in 0..1: no threshold decision turns on less
RAW_TOLERANCE = 1e-3    # of the logit's magnitude, at least 1


def compare_outputs(names: list[str], expected: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Per output: the largest error between the network and the exported model, in the output's own measure.

    An absolute bound on boxes fails a correct export whose untrained boxes are thousands of pixels wide
    (exp of a large logit): a box coordinate's float error grows with the box, so it is measured against the
    box's size. Boxes and scores are checked separately (a 0.02 px box error is nothing, a 0.02 score error is
    a broken model)."""
    check = {}
    for name, a, b in zip(names, expected, got):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise ExportError(f"output {name}: exported shape {b.shape} differs from the network's {a.shape}")
        if name == "boxes":
            size = np.abs(a[..., 2:] - a[..., :2])                  # width, height
            scale = np.maximum(1.0, np.concatenate([size, size], axis=-1))  # x1, y1, x2, y2
            check[name] = {"error": _worst(a, b, scale), "tolerance": BOX_TOLERANCE, "measure": "of the box size"}
        elif name == "scores":
            check[name] = {"error": _worst(a, b, 1.0), "tolerance": SCORE_TOLERANCE, "measure": "absolute"}
        else:
            check[name] = {"error": _worst(a, b, np.maximum(1.0, np.abs(a))), "tolerance": RAW_TOLERANCE,
                           "measure": "of the value"}
    return check


def _worst(a: np.ndarray, b: np.ndarray, scale) -> float:
    """max |a - b| / scale. Values beyond 1e6 on both sides with the same sign count as equal: an untrained box
    size exp(t) can overflow to inf in one runtime and stay finite in the other, and no picture is that wide.
    NaN counts as infinitely wrong."""
    with np.errstate(invalid="ignore", over="ignore"):
        far = (np.abs(a) > 1e6) & (np.abs(b) > 1e6) & (np.sign(a) == np.sign(b))
        ratio = np.where(far, 0.0, np.abs(a - b) / scale)
    ratio = np.nan_to_num(ratio, nan=np.inf, posinf=np.inf)
    return float(ratio.max()) if ratio.size else 0.0


def _as_tuple(value):
    return value if isinstance(value, (tuple, list)) else (value,)


def rewrite_onnx_for_atc(path: pathlib.Path, dynamic_batch: bool) -> None:
    """Turn constant-size Resizes into constant-scale ones and optionally free the batch dimension."""
    import onnx
    from onnx import numpy_helper, shape_inference

    from models.onnx_check import check_onnx_for_atc

    model = onnx.load(str(path))
    graph = model.graph
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value for d in dims]
    initializers = {init.name: init for init in graph.initializer}
    constants = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}

    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        sizes_name = node.input[3]
        if sizes_name in initializers:
            sizes = numpy_helper.to_array(initializers[sizes_name])
        elif sizes_name in constants:
            sizes = numpy_helper.to_array(constants[sizes_name].attribute[0].t)
        else:
            raise ExportError(f"{path}: Resize node {node.name!r} has run-time sizes")
        in_shape = shapes.get(node.input[0])
        if not in_shape or 0 in in_shape:
            raise ExportError(f"{path}: cannot infer the input shape of Resize node {node.name!r}")
        scales = np.asarray(sizes, dtype=np.float32) / np.asarray(in_shape, dtype=np.float32)
        scales_name = f"{node.name}_scales"
        graph.initializer.append(numpy_helper.from_array(scales.astype(np.float32), scales_name))
        del node.input[3]
        node.input[2] = scales_name

    _simplify_softplus_guards(graph)
    if dynamic_batch:
        for value in list(graph.input) + list(graph.output):
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_param = "batch"
    # Intermediate shape annotations were traced at batch 1; drop them so no runtime trusts them.
    del graph.value_info[:]
    _drop_unused_initializers(graph)
    onnx.checker.check_model(model)
    problems = check_onnx_for_atc(model)
    if problems:
        raise ExportError(f"{path}: not ready for atc:\n  " + "\n  ".join(map(str, problems)))
    onnx.save(model, str(path))


def _simplify_softplus_guards(graph) -> None:
    """MindSpore exports softplus(x) as Where(Greater(x, 20), x, Softplus(x) * 1.0); Softplus itself is exact
    for large x in float32 and ONNX's Softplus is opset-11 standard. Dropping the guard removes four of the
    seven nodes of every Mish, which ONNX Runtime and atc would otherwise run one by one."""
    from onnx import numpy_helper

    producers = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    constants.update({node.output[0]: numpy_helper.to_array(node.attribute[0].t)
                      for node in graph.node if node.op_type == "Constant" and node.attribute})
    replace = {}
    for node in graph.node:
        if node.op_type != "Where" or len(node.input) != 3:
            continue
        condition, passthrough, scaled = (producers.get(name) for name in node.input)
        if not (condition and scaled and condition.op_type == "Greater" and scaled.op_type == "Mul"):
            continue
        softplus = producers.get(scaled.input[0])
        factor_node = producers.get(scaled.input[1])
        factor_name = factor_node.input[0] if factor_node is not None and factor_node.op_type == "Cast" \
            else scaled.input[1]
        factor = constants.get(factor_name)
        if (softplus is None or softplus.op_type != "Softplus" or factor is None or float(factor) != 1.0
                or condition.input[0] != node.input[1] or softplus.input[0] != node.input[1]):
            continue
        replace[node.output[0]] = softplus.output[0]
    if not replace:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in replace:
                node.input[i] = replace[name]
    # Drop nodes whose outputs nobody reads any more (the guards), repeatedly.
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if not any(out in used for out in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
