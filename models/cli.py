"""`inspector export` and `inspector model ...`: export a trained network with its ModelSpec, inspect networks,
check weight files, cross-check against OpenCV, benchmark the CPU runtimes."""

from __future__ import annotations

import argparse
import json

from core.cliargs import non_negative_int, positive_int
from core.extras import TRAINING_PYTHON, require_extra
from models.errors import ModelError


MAX_INPUT_SIZE = 4096


def parse_size(value: str) -> tuple[int, int]:
    """`416` or `416x608` (height x width)."""
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size {value!r}: expected N or HxW") from exc
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32 or any(p % 32 for p in parts):
        raise argparse.ArgumentTypeError(f"size {value!r}: height and width must be multiples of 32")
    if max(parts) > MAX_INPUT_SIZE:
        raise argparse.ArgumentTypeError(f"size {value!r}: at most {MAX_INPUT_SIZE} (DVPP resizes to at most "
                                         f"4096 x 4096; YOLOv4 is trained at 320-1280)")
    return parts[0], parts[1]


def parse_int_list(value: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: expected comma-separated integers") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected positive integers")
    return values


def register(commands) -> None:
    export = commands.add_parser("export", help="export weights + ModelSpec to ONNX or MINDIR with manifest.json")
    export.add_argument("--cfg", required=True, help="Darknet cfg file or bundled name (yolov4, yolov4-tiny)")
    export.add_argument("--weights", required=True, help=".weights or .ckpt with every tensor of the network")
    export.add_argument("--classes", required=True,
                        help="class names: a file (one per line) or a comma-separated list")
    export.add_argument("--format", choices=("onnx", "mindir"), required=True)
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--size", type=parse_size, help="input size N or HxW (default: the cfg's)")
    export.add_argument("--batch", type=positive_int,
                        help="fixed batch size (default: dynamic batch, for atc --dynamic_batch_size)")
    export.add_argument("--gears", type=parse_int_list, help="dynamic-batch gears for the manifest (default 1,2,4,8)")
    export.add_argument("--raw", action="store_true", help="export the raw head tensors instead of boxes/scores")
    export.add_argument("--name-map", help="name map for a checkpoint under another naming scheme")
    export.set_defaults(handler=_export)

    model = commands.add_parser("model", help="inspect, verify and benchmark networks")
    sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="print a network's layers, heads and parameter count as JSON")
    info.add_argument("--cfg", required=True, help="Darknet cfg file or bundled name (yolov4, yolov4-tiny)")
    info.add_argument("--classes", type=positive_int, help="class count (default: the cfg's)")
    info.add_argument("--size", type=parse_size, help="input size N or HxW (default: the cfg's)")
    info.set_defaults(handler=_info)

    load = sub.add_parser("load", help="load a .weights/.ckpt into a network and print the load report")
    load.add_argument("--cfg", required=True)
    load.add_argument("--weights", required=True, help="Darknet .weights (full or backbone-only) or .ckpt")
    load.add_argument("--classes", type=positive_int, help="class count of the network to load into")
    load.add_argument("--name-map", help="YAML/JSON name map for a checkpoint under another naming scheme")
    load.add_argument("--strict", action="store_true",
                      help="fail unless everything missing is the class-dependent head (or past a backbone cut)")
    load.set_defaults(handler=_load)

    verify = sub.add_parser("verify", help="compare the MindSpore network with OpenCV's Darknet importer")
    verify.add_argument("--cfg", required=True)
    verify.add_argument("--weights", required=True, help="a full Darknet .weights file")
    verify.add_argument("--size", type=parse_size, help="input size N or HxW (default: the cfg's)")
    verify.add_argument("--batch", type=positive_int, default=1, help="images per forward pass (default 1)")
    verify.add_argument("--image", action="append", default=[],
                        help="image file (repeatable); default: a generated test picture per batch item")
    verify.set_defaults(handler=_verify)

    bench = sub.add_parser("bench", help="forward latency per runtime, network, input size and batch")
    bench.add_argument("--cfg", action="append", help="cfg (repeatable; default yolov4-tiny and yolov4)")
    bench.add_argument("--sizes", type=parse_int_list, default=(416, 608))
    bench.add_argument("--batches", type=parse_int_list, default=(1, 4))
    bench.add_argument("--runtimes", default="onnxruntime,mindspore")
    bench.add_argument("--repeat", type=positive_int, default=5, help="timed runs per case (after one warm-up)")
    bench.add_argument("--threads", type=non_negative_int, default=0, help="runtime threads (0: runtime default)")
    bench.add_argument("--json", help="also write the figures to this JSON file")
    bench.set_defaults(handler=_model_bench)


def _info(args) -> int:
    require_extra("model info", "export", ("mindspore",), TRAINING_PYTHON)
    from models.darknet_cfg import backbone_end, parse_cfg

    height, width = args.size or (None, None)
    cfg = parse_cfg(args.cfg, classes=args.classes, height=height, width=width)
    from models.network import DarknetYolo

    network = DarknetYolo(cfg)
    parameters = sum(int(p.size) for p in network.trainable_params())
    kinds: dict[str, int] = {}
    for layer in cfg.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    print(json.dumps({
        "cfg": cfg.source, "input": [cfg.height, cfg.width], "classes": cfg.classes, "layers": kinds,
        "trainable_parameters": parameters, "class_dependent_convs": list(cfg.class_dependent_convs),
        "backbone_end": backbone_end(cfg),
        "heads": [{"layer": h.layer_index, "stride": h.stride, "mask": list(h.mask), "scale_x_y": h.scale_x_y,
                   "grid": [h.grid_height, h.grid_width]} for h in cfg.heads],
        "anchors": [list(a) for a in cfg.anchors],
    }, indent=2))
    return 0


def _load(args) -> int:
    require_extra("model load", "export", ("mindspore",), TRAINING_PYTHON)
    from models.darknet_cfg import parse_cfg
    from models.network import DarknetYolo
    from models.weights import load_weights, report_json

    cfg = parse_cfg(args.cfg, classes=args.classes)
    report = load_weights(DarknetYolo(cfg), args.weights, strict=args.strict, name_map=args.name_map)
    print(report_json(report))
    return 0


def _verify(args) -> int:
    require_extra("model verify", "export", ("mindspore",), TRAINING_PYTHON)
    import cv2

    from models.darknet_cfg import parse_cfg
    from models.testing import synthetic_image
    from models.verify import verify
    from models.weights import read_darknet_weights

    height, width = args.size or (None, None)
    cfg = parse_cfg(args.cfg, height=height, width=width)
    _, report = read_darknet_weights(args.weights, cfg)
    if report.absent_layers:
        raise ModelError(f"{args.weights}: a backbone-only file has no head to compare; verify needs a full file")
    if report.source_classes != cfg.classes:
        cfg = parse_cfg(args.cfg, classes=report.source_classes, height=height, width=width)
    images = []
    for path in args.image:
        image = cv2.imread(path)
        if image is None:
            raise ModelError(f"{path}: cannot read image")
        images.append(image)
    while len(images) < args.batch:
        images.append(synthetic_image(cfg.height + 48, cfg.width - 32, seed=len(images)))
    result = verify(cfg, args.weights, images[:max(args.batch, len(args.image))])
    print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.ok else 1


def _export(args) -> int:
    require_extra("export", "export", ("mindspore", "onnx"), TRAINING_PYTHON)
    from models.export import export_model
    from models.spec import read_class_names

    result = export_model(args.cfg, args.weights, read_class_names(args.classes), args.format, args.out,
                          size=args.size, raw=args.raw, batch=args.batch, batch_gears=args.gears,
                          name_map=args.name_map)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _model_bench(args) -> int:
    require_extra("model bench", "export", ("mindspore", "onnx"), TRAINING_PYTHON)
    import sys

    from models.bench import bench_runtimes, format_table

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    rows = bench_runtimes(args.cfg or ["yolov4-tiny", "yolov4"], args.sizes, args.batches, runtimes,
                          repeat=args.repeat, threads=args.threads, progress=sys.stderr)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return 0
