"""How the field model's figures move with the scale it looks at, nothing trained again (docs/transfer.md,
"Scale at inference"): the first stage exported at other input sizes from its checkpoint, and the second stage
given tiles of other sizes (its manifest's `crops.max_side`), each evaluated on the same held-out pictures with
the commands a user runs (`inspector export`, `inspector eval`). Needs MindSpore (the exports) and ../shared.

    python docs/bench/field_scale_sweep.py [--out docs/bench/field-scale-sweep.json]
    python docs/bench/field_scale_sweep.py --stage2 runs/field/defects-stage2-tiles/export-onnx --no-stage1 \
        --out docs/bench/field-defects-stage2-tiles/scale-sweep.json     # another second stage, same first
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "models/zoo/field/field.yaml"
HELD_OUT = ROOT / "train/configs/field-insulator.yaml"
CHECKPOINT = ROOT / "models/zoo/field-insulator/best.ckpt"
SIZES = (352, 384, 416, 448, 512, 608)      # 416: as trained and deployed
TILES = (0.18, 0.25, 0.28, 0.32, 0.4, 0.5)  # 0.25: as trained and deployed


def inspector(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "inspector", *args], check=True, capture_output=True,
                          text=True, cwd=ROOT).stdout


def stage1(work: pathlib.Path) -> dict:
    spec = json.loads((ROOT / "models/zoo/field/model/manifest.json").read_text())
    figures = {}
    for size in SIZES:
        model = work / f"stage1-{size}"
        inspector("export", "--cfg", str(ROOT / "models/zoo/field/model/network.cfg"), "--weights",
                  str(CHECKPOINT), "--classes", ",".join(spec["class_names"]), "--format", "onnx", "--out",
                  str(model), "--size", str(size))
        result = json.loads(inspector("eval", "--model", str(model), "--held-out-of", str(HELD_OUT)))
        figures[size] = {source: {"insulator_AP50": r["per_class_AP50"]["insulator"],
                                  "insulator_AP50_95": r["per_class_AP50_95"]["insulator"]}
                         for source, r in result["per_source"].items()}
    return figures


def stage2(work: pathlib.Path, second: pathlib.Path) -> dict:
    config = yaml.safe_load(CONFIG.read_text())
    figures = {}
    for tile in TILES:
        model = work / f"stage2-{tile}"
        shutil.copytree(second, model)
        manifest = json.loads((model / "manifest.json").read_text())
        manifest["crops"]["max_side"] = tile
        (model / "manifest.json").write_text(json.dumps(manifest, indent=2))
        variant = dict(config, model=str(ROOT / "models/zoo/field/model"),
                       stage2=dict(config["stage2"], model=str(model)),
                       cameras=[dict(config["cameras"][0], url=str(ROOT / "pipeline/demo/insulators.mp4"))],
                       output=dict(config["output"], directory=str(work / "out")))
        path = work / f"field-{tile}.yaml"
        path.write_text(yaml.safe_dump(variant))
        result = json.loads(inspector("eval", "--config", str(path), "--held-out-of", str(HELD_OUT)))
        cascade = result["cascade"]
        figures[tile] = {"crops_per_picture": round(result["crops_per_picture"], 1),
                         "AP50": cascade["per_class_AP50"], "AP50_95": cascade["per_class_AP50_95"]}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs/bench/field-scale-sweep.json"))
    parser.add_argument("--stage2", default=str(ROOT / "models/zoo/field/stage2"), help="second-stage export")
    parser.add_argument("--no-stage1", action="store_true", help="only the second stage's tiles")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        figures = {"stage1_input_size": {} if args.no_stage1 else stage1(work),
                   "stage2_tile_max_side": stage2(work, pathlib.Path(args.stage2).resolve())}
    pathlib.Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    for size, sources in figures["stage1_input_size"].items():
        print(f"stage 1 at {size}: " + ", ".join(f"{s} insulator {f['insulator_AP50']:.3f} "
                                                 f"({f['insulator_AP50_95']:.3f})" for s, f in sources.items()))
    for tile, f in figures["stage2_tile_max_side"].items():
        print(f"stage 2 tiles {tile}: {f['crops_per_picture']} crops a picture, " +
              ", ".join(f"{c} {ap:.3f} ({f['AP50_95'][c]:.3f})" for c, ap in f["AP50"].items()))


if __name__ == "__main__":
    main()
