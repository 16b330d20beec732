"""`inspector train | eval`."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from core.cliargs import fraction, positive_int
from core.extras import TRAINING_PYTHON, require_extra

if TYPE_CHECKING:  # the models are imported when a command runs
    from models.cascade import CascadeRule, Decoding
    from models.spec import ModelSpec


def register(commands, deployed_models=None) -> None:
    """`deployed_models(daemon_config) -> (model dir, its Decoding, stage-2 dir or None, CascadeRule or None)`: what
    a daemon config runs, for `eval --config` (given by the command line's top layer: training does not read daemon
    configs itself)."""
    train = commands.add_parser("train", help="fine-tune YOLOv4 / YOLOv4-tiny (config documented in train/config.py)")
    train.add_argument("--config", required=True, help="training config (YAML)")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.ckpt")
    train.add_argument("--epochs", type=positive_int, help="override the config's epochs")
    train.add_argument("--out", help="override the config's output directory (e.g. to resume a run kept elsewhere)")
    train.add_argument("--seed", type=int, help="override the config's seed (initialisation, sampling, augmentation)")
    train.add_argument("--set", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                       help="override any config key, dotted into sections (data.label_fraction.broken=0.25, "
                            "transfer.l2sp=0.01); VALUE is YAML; relative paths are relative to the config file; "
                            "repeatable")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (logs and metrics only)")
    train.add_argument("--print-config", action="store_true",
                       help="print the config as the training would run it (its base merged, the overrides "
                            "applied, the paths resolved) and exit: nothing is trained")
    train.set_defaults(handler=_train)

    bench = commands.add_parser("train-bench", help="training throughput (images/s) and peak memory per network")
    bench.add_argument("--cfg", action="append", help="cfg (repeatable; default yolov4-tiny and yolov4)")
    bench.add_argument("--size", type=positive_int, default=416)
    bench.add_argument("--batch", type=positive_int, default=4)
    bench.add_argument("--steps", type=positive_int, default=5, help="timed steps after the first (compiling) one")
    bench.set_defaults(handler=_bench)

    anchors = commands.add_parser("anchors", help="anchors fitted to a training config's boxes (k-means, 1 - IoU), "
                                                  "beside the cfg's, with how well each covers the boxes")
    anchors.add_argument("--config", required=True, help="training config (YAML): its data, cfg and input size")
    anchors.add_argument("--seed", type=int, default=0)
    anchors.set_defaults(handler=_anchors)

    compare = commands.add_parser("train-compare", help="training runs side by side: held-out mAP (markdown)")
    compare.add_argument("runs", nargs="+", help="run directories (config.json and metrics.jsonl)")
    compare.set_defaults(handler=_compare)

    evaluate = commands.add_parser("eval", help="COCO mAP of an exported model on a labelled data set (JSON)")
    evaluate.add_argument("--model", help="an `inspector export` directory (or --config)")
    evaluate.add_argument("--config", metavar="DAEMON_CONFIG",
                          help="evaluate what this daemon config deploys: its model and its second stage, with its "
                               "thresholds, NMS and max_crops (the cascade as the daemon runs it); at_threshold: "
                               "what it would report at its score thresholds")
    evaluate.add_argument("--data", help="data set root (or --held-out-of)")
    evaluate.add_argument("--held-out-of", metavar="TRAIN_CONFIG",
                          help="evaluate on the pictures this training config holds out (its val_path or split)")
    evaluate.add_argument("--stage2", metavar="DIR", help="a second-stage export: evaluate the cascade end to end "
                                                          "on full pictures, beside --model alone")
    evaluate.add_argument("--parent-score", type=fraction,
                          help="--stage2: stage-1 score above which a parent is cropped (default 0.25; --config "
                               "uses the config's thresholds)")
    evaluate.add_argument("--format", default="voc", choices=("voc", "coco", "yolo"), help="annotation format")
    evaluate.add_argument("--plot", help="write the precision-recall plot (PNG) here")
    evaluate.add_argument("--bootstrap", type=positive_int, metavar="ROUNDS",
                          help="resample the pictures this many times (e.g. 1000): each class's AP gets the 90%% "
                               "interval it would move in on other pictures like these (`bootstrap`)")
    evaluate.add_argument("--against", metavar="DIR|CONFIG",
                          help="what to compare with, on the same pictures: another export with the same classes "
                               "in place of the (first) model, decoded the same way and with the same second stage; "
                               "or another daemon config, as it deploys its models. Its AP and the difference per "
                               "class (`against`; with --bootstrap, the difference's 90%% interval over the same "
                               "resamplings)")
    evaluate.add_argument("--draw", metavar="DIR", help="write every picture here with its labels (green) and the "
                                                        "detections reported (red): at --config's thresholds, "
                                                        "else from --draw-score")
    evaluate.add_argument("--draw-score", type=fraction, default=0.3,
                          help="--draw without --config: the score from which a detection is drawn (default 0.3, "
                               "the daemon's default threshold)")
    evaluate.set_defaults(handler=_eval, deployed_models=deployed_models)


def key_value(text: str) -> tuple:
    """`KEY=VALUE` with VALUE read as YAML (0.25 a number, [a, b] a list, {} an empty mapping); 1e-3 is a number
    too (YAML 1.1 wants 1.0e-3, which nobody types)."""
    import argparse
    import re

    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE (e.g. transfer.l2sp=0.01)")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        why = getattr(exc, "problem", None) or exc
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML ({why})") from None
    if isinstance(parsed, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", parsed.strip()):
        parsed = float(parsed)
    return key.strip(), parsed


def _train(args) -> int:
    import pathlib

    import yaml

    from train.config import load_train_config

    if not args.print_config:  # --print-config checks a config on any machine (no MindSpore), before hours of training
        require_extra("train", "train", ("mindspore", "pycocotools", "matplotlib", "tqdm"), TRAINING_PYTHON)
    out = str(pathlib.Path(args.out).resolve()) if args.out else None  # relative to where the user is
    overrides = dict(args.set)
    overrides.update({k: v for k, v in (("epochs", args.epochs), ("out", out), ("seed", args.seed)) if v is not None})
    config = load_train_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=None), end="")
        return 0
    from train.trainer import train

    summary = train(config, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


def _eval(args) -> int:
    require_extra("eval", "train", ("pycocotools", "matplotlib"))
    from models.runtime import open_session
    from core.errors import ConfigError
    from models.spec import ModelSpec
    from train.cascade_eval import eval_classes
    from train.datasets import held_out_of, load_dataset
    from train.draw import reported
    from train.evaluate import curve_decoding, evaluate_sources, plot_pr, predict

    if bool(args.data) == bool(args.held_out_of):
        raise ConfigError("eval: give either --data or --held-out-of")
    rule = deployed = None
    if args.config:
        if args.model or args.stage2 or args.parent_score is not None:
            raise ConfigError("eval: --config names the models and the cascade's thresholds (model, stage2, "
                              "thresholds): leave out --model, --stage2 and --parent-score")
        args.model, deployed, args.stage2, rule = args.deployed_models(args.config)
    elif not args.model:
        raise ConfigError("eval: give --model (an export directory) or --config (a daemon config)")
    spec = ModelSpec.load(args.model)
    session = open_session(f"{args.model}/{spec.cpu_model_name}")
    stage2 = ModelSpec.load(args.stage2) if args.stage2 else None
    other = _against(args, spec, stage2) if args.against else None
    classes = eval_classes(spec, stage2)
    if args.held_out_of:
        dataset, where = held_out_of(args.held_out_of, classes), f"the pictures {args.held_out_of} holds out"
    else:
        dataset, where = load_dataset(args.data, args.format, classes), args.data
    for issue in dataset.issues:
        print(f"data: {issue}", file=sys.stderr)
    if not dataset.samples or not any(len(sample.labels) for sample in dataset.samples):
        # An mAP of 0.0 (or -1) over nothing reads like a broken model; it is a wrong path or format.
        raise ConfigError(f"{where}: no labelled object in {len(dataset.samples)} usable pictures read as "
                          f"{args.format if args.data else 'its training format'} ({len(dataset.issues)} problems "
                          f"above): wrong --format or path?")
    if stage2 is not None:
        from train.cascade_eval import DEFAULT_PARENT_SCORE, CascadeModels, eval_rule, evaluate_cascade

        session2 = open_session(f"{args.stage2}/{stage2.cpu_model_name}")
        shown: list = []
        try:
            used = rule or eval_rule(spec, stage2, DEFAULT_PARENT_SCORE if args.parent_score is None
                                     else args.parent_score)
        except ValueError as exc:
            raise ConfigError(f"eval --stage2 {args.stage2}: {exc}") from None
        # An export compared in the first model's place runs with this second stage (its session) and rule.
        against = None if other is None else CascadeModels(other.run1, other.spec1, other.run2 or session2.run,
                                                           other.spec2 or stage2, other.rule or used)
        try:
            report = evaluate_cascade(dataset, session.run, spec, session2.run, stage2, used, shown,
                                      args.bootstrap or 0, against)
        except ValueError as exc:
            raise ConfigError(f"eval --{'against ' + args.against if against else 'stage2 ' + args.stage2}: "
                              f"{exc}") from None
        if args.draw:
            _draw(dataset, shown if rule else [d for d in shown if d["score"] >= args.draw_score], args.draw)
        print(json.dumps(report, indent=2))
        return 0
    unreadable: list = []
    # A daemon config's model is decoded as that daemon does (its NMS and cap) and counted at its thresholds.
    results = predict(lambda images: session.run(images), dataset, spec, unreadable=unreadable,
                      decoding=curve_decoding(deployed) if deployed else None)
    for index in unreadable:
        print(f"data: {dataset.samples[index].image}: not a readable picture (left out of the evaluation)",
              file=sys.stderr)
    against = None
    if other is not None:
        # The same pictures are unreadable for both models: predict skips them again.
        decoding = other.decoding if other.decoding is not None else deployed
        against = predict(other.run1, dataset, other.spec1, unreadable=[],
                          decoding=curve_decoding(decoding) if decoding else None)
    metrics = evaluate_sources(dataset, results, unreadable, deployed.thresholds if deployed else None,
                               args.bootstrap or 0, against)
    if args.draw:
        _draw(dataset, reported(results, spec.class_names,
                                deployed.thresholds if deployed else (args.draw_score,) * spec.num_classes),
              args.draw)
    if args.plot:
        plot_pr(metrics, args.plot)
    metrics.pop("pr_curves", None)
    print(json.dumps(metrics | {"images": len(dataset.samples) - len(unreadable), "unreadable": len(unreadable)},
                     indent=2))
    return 0


@dataclasses.dataclass
class _Other:
    """--against, opened: its (first) model, its own decoding when a daemon config gives one (None: decoded as
    what it is compared with), and its second stage and rule when it has them."""

    run1: Callable
    spec1: ModelSpec
    decoding: Optional[Decoding] = None
    run2: Optional[Callable] = None
    spec2: Optional[ModelSpec] = None
    rule: Optional[CascadeRule] = None


def _against(args, spec, stage2) -> _Other:
    """--against: a directory is an export taking the (first) model's place; a file is a daemon config. Refused,
    naming it, unless it gives the classes of what is evaluated, one stage against one, two against two."""
    import pathlib

    from core.errors import ConfigError
    from models.runtime import open_session
    from models.spec import ModelSpec

    where = f"eval --against {args.against}"
    if pathlib.Path(args.against).is_dir():
        model, decoding, model2, rule = args.against, None, None, None
    else:
        model, decoding, model2, rule = args.deployed_models(args.against)
        if (model2 is None) != (stage2 is None):
            raise ConfigError(f"{where}: {'a single stage' if model2 is None else 'a cascade'} cannot be compared "
                              f"with {'a cascade' if stage2 is not None else 'a single stage'}")
    other = ModelSpec.load(model)
    if tuple(other.class_names) != tuple(spec.class_names):
        raise ConfigError(f"{where}: its classes {list(other.class_names)} are not {args.model}'s "
                          f"{list(spec.class_names)}")
    session = open_session(f"{model}/{other.cpu_model_name}")
    found = _Other(session.run, other, decoding)
    if model2 is not None:
        found.spec2 = ModelSpec.load(model2)
        found.run2 = open_session(f"{model2}/{found.spec2.cpu_model_name}").run
        found.rule = rule
    return found


def _draw(dataset, detections: list, out: str) -> None:
    from train.draw import draw_pictures

    written = draw_pictures(dataset, detections, out)
    print(f"eval: {len(written)} pictures with labels and {len(detections)} detections drawn in {out}",
          file=sys.stderr)


def _bench(args) -> int:
    require_extra("train-bench", "train", ("mindspore",), TRAINING_PYTHON)
    from train.bench import format_rows, run

    rows = run(args.cfg or ["yolov4-tiny", "yolov4"], args.size, args.batch, args.steps)
    print(format_rows(rows))
    print(json.dumps(rows))
    return 0


def _anchors(args) -> int:
    """Fitted on the training pictures (the held-out ones stay unseen), measured in model-input pixels."""
    from models.anchors import anchors_for_cfg, box_labels, fitness, fitness_per_class, letterboxed_sizes
    from models.darknet_cfg import parse_cfg
    from train.config import load_train_config
    from train.datasets import split_data

    config = load_train_config(args.config)
    data = config.data
    if data.crops is not None:  # a second stage sees crops: fitted on the training crops (cut or reused)
        from train.crop_sets import build_crop_sets

        train_set, _ = build_crop_sets(config)
    else:
        train_set, _ = split_data(data, data.classes)
    sizes = letterboxed_sizes(train_set.samples, config.input_size)
    labels = box_labels(train_set.samples)
    cfg = parse_cfg(config.cfg, classes=len(data.classes), height=config.input_size, width=config.input_size,
                    anchors=config.anchors)
    fitted, used = anchors_for_cfg(sizes, cfg, args.seed)
    threshold = config.loss.anchor_iou
    current = np.asarray(cfg.anchors)  # the cfg's own, or the config's `anchors` when it has them
    report = {"boxes": len(sizes), "input_size": config.input_size, "anchor_iou": threshold,
              "slots_used": used,  # by the heads' masks: fitness counts only these
              "box_size_percentiles": {p: [round(float(v), 1) for v in np.percentile(sizes, p, axis=0)]
                                       for p in (5, 50, 95)},
              "current": {"anchors": current.tolist(), **fitness(sizes, current[used], threshold).to_dict(),
                          "per_class": fitness_per_class(sizes, labels, data.classes, current[used], threshold)},
              "fitted": {"anchors": [[round(float(w), 1), round(float(h), 1)] for w, h in fitted],
                         **fitness(sizes, fitted[used], threshold).to_dict(),
                         "per_class": fitness_per_class(sizes, labels, data.classes, fitted[used], threshold)}}
    print(json.dumps(report))
    pairs = ", ".join(f"[{w}, {h}]" for w, h in report["fitted"]["anchors"])
    print(f"# for {args.config}:\nanchors: [{pairs}]", file=sys.stderr)
    return 0


def _compare(args) -> int:
    import pathlib

    from train.compare import markdown

    print(markdown([pathlib.Path(r) for r in args.runs]))
    return 0
