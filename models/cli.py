"""`inspector model ...`: inspect networks, check weight files, cross-check against OpenCV, benchmark."""

from __future__ import annotations

import argparse
import json

from core.cliargs import positive_int
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


def register(commands):
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

    return sub  # the `model` actions: deploy/cli.py adds `bench` (it exports, a layer above)


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
