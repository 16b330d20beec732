"""`inspector convert`, `plan` and `bundle`: the OM conversion, the capacity of one Ascend 310, the edge bundle."""

from __future__ import annotations

import json

from core.extras import require_extra
from core.cliargs import frame_size, non_negative_float, positive_float, positive_int
from models.cli import parse_int_list


def parse_skips(value: str) -> tuple[int, ...]:
    try:
        skips = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise __import__("argparse").ArgumentTypeError(f"{value!r}: expected comma-separated integers") from exc
    if not skips or min(skips) < 0:
        raise __import__("argparse").ArgumentTypeError(f"{value!r}: frame skips are integers >= 0")
    return skips


def register(commands) -> None:
    convert = commands.add_parser("convert", help="prepare (and run, where atc exists) the OM conversion")
    convert.add_argument("--model", required=True, help="an `inspector export --format onnx` directory")
    convert.add_argument("--out", required=True, help="output model directory (OM, AIPP, atc.sh, manifest)")
    convert.add_argument("--soc-version", default="Ascend310", help="atc --soc_version (default Ascend310)")
    convert.add_argument("--output-type", default="FP32", choices=("FP16", "FP32"),
                         help="atc --output_type of the network outputs (default FP32: pixel boxes keep "
                              "sub-pixel precision; the AI core still computes in FP16)")
    convert.add_argument("--gears", type=parse_int_list, help="dynamic-batch gears (default: the manifest's)")
    convert.add_argument("--yuv-matrix", default="bt601-limited",
                         choices=("bt601-limited", "bt709-limited", "bt601-full"),
                         help="camera YUV matrix and range for the AIPP colour conversion (models/aipp.py)")
    convert.add_argument("--require-atc", action="store_true",
                         help="exit non-zero when atc is not available instead of only writing the files")
    convert.set_defaults(handler=_convert)

    plan = commands.add_parser("plan", help="cameras one Ascend 310 sustains, and the bottleneck unit")
    plan.add_argument("--cfg", action="append", help="network (repeatable; default yolov4 and yolov4-tiny)")
    plan.add_argument("--sizes", type=parse_int_list, default=(416, 608), help="model input sizes")
    plan.add_argument("--camera", type=frame_size, default=(1920, 1080),
                      help="camera resolution WxH (default 1920x1080)")
    plan.add_argument("--fps", type=positive_float, default=25.0, help="camera frame rate (default 25)")
    plan.add_argument("--codec", choices=("h264", "h265"), default="h264",
                      help="what the cameras stream (the VDEC's rate is the same for both; default h264)")
    plan.add_argument("--frame-skip", type=parse_skips, default=(0,), help="frame skip values, e.g. 0,1,4")
    plan.add_argument("--batch", type=positive_int, default=4, help="batch size (a dynamic-batch gear)")
    plan.add_argument("--npu-fps", type=positive_float,
                      help="measured NPU inferences/s of the model at this batch (default: estimated from its "
                           "computation)")
    plan.add_argument("--host-ms", type=positive_float,
                      help="measured host time per frame on one box core, in ms, without a second stage's crops "
                           "(default: this machine's figure x an ARM factor, an estimate)")
    plan.add_argument("--stage2-cfg", help="a second stage on crops: its network (e.g. yolov4-tiny)")
    plan.add_argument("--stage2-size", type=positive_int, default=96,
                      help="the second model's input size (default 96)")
    plan.add_argument("--crops-per-frame", type=non_negative_float, default=10.0,
                      help="second-stage crops per inferred frame (default 10, the demo clip's mean)")
    plan.add_argument("--stage2-npu-fps", type=positive_float,
                      help="measured NPU crops/s of the second model at this batch")
    plan.add_argument("--json", action="store_true", help="print JSON instead of the table")
    plan.set_defaults(handler=_plan)

    bundle = commands.add_parser("bundle", help="one versioned archive for an Atlas box (install.sh inside)")
    bundle.add_argument("--model", required=True, help="converted model directory (`inspector convert` output)")
    bundle.add_argument("--config", required=True, help="the daemon config for the box")
    bundle.add_argument("--out", required=True, help="where inspector-<version>.tar.gz is written")
    bundle.add_argument("--version", help="bundle version (default: the package version)")
    bundle.add_argument("--platform", help="the box's platform, linux_aarch64 (Atlas) or linux_x86_64 (default: this "
                                           "machine's); the dependency wheels are downloaded for it")
    bundle.add_argument("--python", help="the box's Python, e.g. 3.9 (mxVision's; default: this one)")
    bundle.add_argument("--glibc", help="the oldest glibc the wheels may need (default 2.17 with --platform, else "
                                        "this machine's)")
    bundle.add_argument("--find-links", help="take the dependency wheels from this directory instead of the index")
    bundle.set_defaults(handler=_bundle)


def _convert(args) -> int:
    require_extra("convert", "export", ("onnx",))
    from deploy.convert import convert

    result = convert(args.model, args.out, soc_version=args.soc_version, output_type=args.output_type,
                     gears=args.gears, yuv_matrix=args.yuv_matrix, require_atc=args.require_atc)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _bundle(args) -> int:
    from deploy.bundle import build_bundle

    print(build_bundle(args.model, args.config, args.out, args.version, platform_name=args.platform,
                       python=args.python, glibc=args.glibc, find_links=args.find_links))
    return 0


def _plan(args) -> int:
    from deploy.plan import Stage2, format_plans, plan

    width, height = args.camera
    stage2 = Stage2(args.stage2_cfg, args.stage2_size, args.crops_per_frame, args.stage2_npu_fps) \
        if args.stage2_cfg else None
    plans = [plan(cfg, size, width, height, args.fps, skip, args.batch, args.npu_fps, args.host_ms, stage2,
                  args.codec)
             for cfg in (args.cfg or ["yolov4", "yolov4-tiny"]) for size in args.sizes for skip in args.frame_skip]
    print(json.dumps([p.to_dict() for p in plans], indent=2) if args.json else format_plans(plans))
    return 0
