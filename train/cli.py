"""`inspector train | eval`."""

from __future__ import annotations

import json
import sys

from core.extras import TRAINING_PYTHON, require_extra


def register(commands) -> None:
    train = commands.add_parser("train", help="fine-tune YOLOv4 / YOLOv4-tiny (config documented in train/config.py)")
    train.add_argument("--config", required=True, help="training config (YAML)")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.ckpt")
    train.add_argument("--epochs", type=int, help="override the config's epochs")
    train.add_argument("--out", help="override the config's output directory (e.g. to resume a run kept elsewhere)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (logs and metrics only)")
    train.set_defaults(handler=_train)

    bench = commands.add_parser("train-bench", help="training throughput (images/s) and peak memory per network")
    bench.add_argument("--cfg", action="append", help="cfg (repeatable; default yolov4-tiny and yolov4)")
    bench.add_argument("--size", type=int, default=416)
    bench.add_argument("--batch", type=int, default=4)
    bench.add_argument("--steps", type=int, default=5, help="timed steps after the first (compiling) one")
    bench.set_defaults(handler=_bench)

    compare = commands.add_parser("train-compare", help="training runs side by side: held-out mAP (markdown)")
    compare.add_argument("runs", nargs="+", help="run directories (config.json and metrics.jsonl)")
    compare.set_defaults(handler=_compare)

    evaluate = commands.add_parser("eval", help="COCO mAP of an exported model on a labelled data set (JSON)")
    evaluate.add_argument("--model", required=True, help="an `inspector export` directory")
    evaluate.add_argument("--data", required=True, help="data set root")
    evaluate.add_argument("--format", default="voc", choices=("voc", "coco", "yolo"), help="annotation format")
    evaluate.add_argument("--plot", help="write the precision-recall plot (PNG) here")
    evaluate.set_defaults(handler=_eval)


def _train(args) -> int:
    require_extra("train", "train", ("mindspore", "pycocotools", "matplotlib", "tqdm"), TRAINING_PYTHON)
    from train.config import load_train_config
    from train.trainer import train

    import pathlib

    out = str(pathlib.Path(args.out).resolve()) if args.out else None  # relative to where the user is
    overrides = {k: v for k, v in (("epochs", args.epochs), ("out", out)) if v} or None
    summary = train(load_train_config(args.config, overrides), resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


def _eval(args) -> int:
    require_extra("eval", "train", ("pycocotools", "matplotlib"))
    from models.runtime import open_session
    from core.errors import ConfigError
    from models.spec import ModelSpec
    from train.datasets import load_dataset
    from train.evaluate import coco_evaluate, plot_pr, predict

    spec = ModelSpec.load(args.model)
    name = spec.cpu_model_name
    session = open_session(f"{args.model}/{name}")
    dataset = load_dataset(args.data, args.format, spec.class_names)
    for issue in dataset.issues:
        print(f"data: {issue}", file=sys.stderr)
    if not dataset.samples:
        # An mAP of 0.0 over nothing reads like a broken model; it is a wrong path or format.
        raise ConfigError(f"{args.data}: no usable labelled images in the {args.format} layout "
                          f"({len(dataset.issues)} problems above)")
    metrics = coco_evaluate(dataset, predict(lambda images: session.run(images), dataset, spec))
    if args.plot:
        plot_pr(metrics, args.plot)
    metrics.pop("pr_curves", None)
    print(json.dumps(metrics | {"images": len(dataset.samples)}, indent=2))
    return 0


def _bench(args) -> int:
    require_extra("train-bench", "train", ("mindspore",), TRAINING_PYTHON)
    from train.bench import format_rows, run

    rows = run(args.cfg or ["yolov4-tiny", "yolov4"], args.size, args.batch, args.steps)
    print(format_rows(rows))
    print(json.dumps(rows))
    return 0


def _compare(args) -> int:
    import pathlib

    from train.compare import markdown

    print(markdown([pathlib.Path(r) for r in args.runs]))
    return 0
