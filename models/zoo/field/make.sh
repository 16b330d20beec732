#!/bin/sh
# The field model from its trainings (sh train/configs/field/run-all.sh makes and evaluates them, resumable):
# the exports the daemon runs and the checkpoints to fine-tune from, then the checks and the banked figures.
# From the repository root:
#   sh models/zoo/field/make.sh
set -eu
install_export() {  # run -> directory the daemon config names
    rm -rf "$2" && mkdir -p "$2" && cp "$1"/export-onnx/* "$2"/
}
install_export runs/field/insulator-more models/zoo/field/model
install_export runs/field/defects-stage2-more models/zoo/field/stage2
mkdir -p models/zoo/field-insulator models/zoo/field-defects
cp runs/field/insulator-more/best.ckpt models/zoo/field-insulator/best.ckpt
cp runs/field/defects-stage2-more/best.ckpt models/zoo/field-defects/best.ckpt
inspector validate --config models/zoo/field/field.yaml
inspector eval --config models/zoo/field/field.yaml --held-out-of train/configs/field-insulator.yaml \
    --bootstrap 1000 \
    > docs/bench/field-model-eval.json
echo "field model: models/zoo/field (figures: docs/bench/field-model-eval.json)"
