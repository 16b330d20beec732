"""How much the field cascade's defect figures move when its tiles fall elsewhere, nothing trained again
(docs/transfer.md, "Where the tiles fall"). Each variant runs the deployed cascade (models/zoo/field/field.yaml:
its models, thresholds and crop rule) with one change, paired against it on the same held-out pictures and the
same bootstrap resamplings (train/cascade_eval.py `evaluate_cascade`, as `inspector eval --against`):

- flip stage 1: the first model also sees the picture mirrored, both sets of boxes decoded together (NMS keeps
  the best of each pair), so the insulator boxes, and the tiles cut around them, move by a few pixels;
- overlap 0.5: tiles overlapping by half their side instead of a quarter (the second model's manifest);
- flip stage 2: each tile also seen mirrored by the second model;
- and, with --other DIR (a second-stage export of the same classes), both second models' boxes together.

Needs ../shared and the committed models; about 4 minutes a variant on this 2-core machine.

    python docs/bench/field_tile_placement.py [--other runs/field/defects-stage2-more2/export-onnx] \
        [--out docs/bench/field-tile-placement.json]
"""

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.runtime import open_session  # noqa: E402
from models.spec import ModelSpec  # noqa: E402
from pipeline.stage2 import deployed_models  # noqa: E402
from train.cascade_eval import CascadeModels, eval_classes, evaluate_cascade  # noqa: E402
from train.datasets import held_out_of  # noqa: E402

CONFIG = ROOT / "models/zoo/field/field.yaml"
HELD_OUT = ROOT / "train/configs/field-insulator.yaml"
BOOTSTRAP = 1000


def mirrored(run):
    """`run` on the batch and on its mirror image, the mirror's boxes flipped back: twice the candidates."""
    def both(images):
        boxes, scores = run(images)
        boxes_m, scores_m = run(np.ascontiguousarray(images[..., ::-1]))
        width = images.shape[-1]
        boxes_m = np.stack([width - boxes_m[..., 2], boxes_m[..., 1], width - boxes_m[..., 0], boxes_m[..., 3]],
                           -1).astype(np.float32)
        return [np.concatenate([boxes, boxes_m], 1), np.concatenate([scores, scores_m], 1)]
    return both


def together(run_a, run_b):
    def both(images):
        (boxes_a, scores_a), (boxes_b, scores_b) = run_a(images), run_b(images)
        return [np.concatenate([boxes_a, boxes_b], 1), np.concatenate([scores_a, scores_b], 1)]
    return both


def summary(report: dict) -> dict:
    cascade = report["cascade"]
    return {"crops_per_picture": round(report["crops_per_picture"], 2),
            "against_crops_per_picture": round(report["against"]["crops_per_picture"], 2),
            "stage1_insulator_AP50": report["stage1"]["per_class_AP50"]["insulator"],
            "stage1_insulator_difference": report["stage1"]["against"]["difference_AP50"]["insulator"],
            "AP50": cascade["per_class_AP50"], "difference_AP50": cascade["against"]["difference_AP50"],
            "at_threshold": {name: {k: v[k] for k in ("score", "found", "false_alarms", "missed")}
                             for name, v in cascade["at_threshold"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs/bench/field-tile-placement.json"))
    parser.add_argument("--other", help="another second-stage export, run together with the deployed one")
    args = parser.parse_args()
    model, _, model2, rule = deployed_models(str(CONFIG))
    spec1, spec2 = ModelSpec.load(model), ModelSpec.load(model2)
    run1 = open_session(pathlib.Path(model) / spec1.cpu_model_name).run
    run2 = open_session(pathlib.Path(model2) / spec2.cpu_model_name).run
    held_out = held_out_of(HELD_OUT, eval_classes(spec1, spec2))
    deployed = CascadeModels(run1, spec1, run2, spec2, rule)
    denser = dataclasses.replace(spec2, crops=dict(spec2.crops, overlap=0.5))
    variants = {"flip stage 1": dataclasses.replace(deployed, run1=mirrored(run1)),
                "overlap 0.5": dataclasses.replace(deployed, spec2=denser),
                "flip stage 2": dataclasses.replace(deployed, run2=mirrored(run2))}
    if args.other:
        spec_other = ModelSpec.load(args.other)
        run_other = open_session(pathlib.Path(args.other) / spec_other.cpu_model_name).run
        variants[f"with {args.other}"] = dataclasses.replace(deployed, run2=together(run2, run_other))
    figures = {}
    for name, variant in variants.items():
        report = evaluate_cascade(held_out, variant.run1, variant.spec1, variant.run2, variant.spec2,
                                  variant.rule, bootstrap=BOOTSTRAP, against=deployed)
        figures[name] = summary(report)
        print(name, json.dumps(figures[name]["difference_AP50"]), file=sys.stderr)
    pathlib.Path(args.out).write_text(json.dumps({"config": str(CONFIG.relative_to(ROOT)),
                                                  "held_out_of": str(HELD_OUT.relative_to(ROOT)),
                                                  "bootstrap": BOOTSTRAP, "variants": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
