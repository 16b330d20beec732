#!/bin/sh
# The field experiments (docs/transfer.md, "Real photographs"), resumable: a finished run (its export exists)
# is skipped, an interrupted one continues from its last.ckpt. Each run is evaluated on every source's
# held-out pictures afterwards (eval.json beside it). From the repository root:
#   sh train/configs/field/run-all.sh
set -eu
run() {  # name config out
    if [ ! -f "$3/export-onnx/manifest.json" ]; then
        inspector train --config "$2" --resume --no-progress
    fi
    if [ ! -f "$3/eval.json" ]; then
        inspector eval --model "$3/export-onnx" --held-out-of "$2" > "$3/eval.json.tmp" && mv "$3/eval.json.tmp" "$3/eval.json"
    fi
    echo "$1: done ($3/eval.json)"
}
run baseline train/configs/field-insulator.yaml runs/field-insulator
run anchors train/configs/field/anchors.yaml runs/field/anchors
run stride8 train/configs/field/stride8.yaml runs/field/stride8
