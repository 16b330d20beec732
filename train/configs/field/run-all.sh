#!/bin/sh
# The field experiments (docs/transfer.md, "Real photographs"), resumable: a finished run (its export exists)
# is skipped, an interrupted one continues from its last.ckpt. Each run is evaluated on every source's
# held-out pictures afterwards (eval.json beside it). From the repository root:
#   sh train/configs/field/run-all.sh
set -eu
train() {  # config out: skipped once its export exists, resumed if interrupted
    if [ ! -f "$2/export-onnx/manifest.json" ]; then
        inspector train --config "$1" --resume --no-progress
    fi
}
report() {  # file command...: the command's output kept as the file, skipped once the file exists (a failed
    # or interrupted command leaves no file behind)
    file=$1
    shift
    if [ ! -f "$file" ]; then
        "$@" > "$file.tmp" || return
        mv "$file.tmp" "$file"
    fi
}
run() {  # name config out
    train "$2" "$3"
    report "$3/eval.json" inspector eval --model "$3/export-onnx" --held-out-of "$2"
    echo "$1: done ($3/eval.json)"
}
run baseline train/configs/field-insulator.yaml runs/field-insulator
# The cascade: the defects on crops around the baseline's insulators, evaluated end to end.
stage2=runs/field/defects-stage2
train train/configs/field/defects-stage2.yaml "$stage2"
report "$stage2/cascade-eval.json" inspector eval --model runs/field-insulator/export-onnx \
    --stage2 "$stage2/export-onnx" --held-out-of train/configs/field-insulator.yaml
echo "cascade: done ($stage2/cascade-eval.json)"
# The same second stage trained 60 epochs more (the committed one), then a third cosine and, instead, as many
# steps on three cuts of each parent (both lose: not shipped), each measured paired as the field config deploys it.
against() {  # name config out daemon-config other-daemon-config
    train "$2" "$3"
    report "$3/cascade-against.json" inspector eval --config "$4" --against "$5" \
        --held-out-of train/configs/field-insulator.yaml --bootstrap 1000
    echo "$1: done ($3/cascade-against.json)"
}
bench=docs/bench/field-defects-stage2-more
against "more epochs" train/configs/field/defects-stage2-more.yaml runs/field/defects-stage2-more \
    $bench/field-stage2-more.yaml $bench/field-stage2.yaml
against "a third cosine" train/configs/field/defects-stage2-more2.yaml runs/field/defects-stage2-more2 \
    docs/bench/field-defects-stage2-more2/field-stage2-more2.yaml $bench/field-stage2-more.yaml
against "three cuts of each parent" train/configs/field/defects-stage2-copies.yaml runs/field/defects-stage2-copies \
    docs/bench/field-defects-stage2-copies/field-stage2-copies.yaml $bench/field-stage2-more.yaml
# Larger tiles at a larger input (the defects' size in the input kept), against the committed cascade as it ships
# (burns up, broken sheds down: not shipped).
against "more context" train/configs/field/defects-stage2-context.yaml runs/field/defects-stage2-context \
    docs/bench/field-defects-stage2-context/field-stage2-context.yaml models/zoo/field/field.yaml
# The second stage at three quarters of the width, from scratch (missing caps up, real defects not: not shipped).
against "a wider second stage" train/configs/field/defects-stage2-wide.yaml runs/field/defects-stage2-wide \
    docs/bench/field-defects-stage2-wide/field-stage2-wide.yaml models/zoo/field/field.yaml
run anchors train/configs/field/anchors.yaml runs/field/anchors
run rotate90 train/configs/field/rotate90.yaml runs/field/rotate90
# The second stage on tiles of every size, then its figures at each deployed tile size.
tiles=runs/field/defects-stage2-tiles
train train/configs/field/defects-stage2-tiles.yaml "$tiles"
if [ ! -f "$tiles/scale-sweep.json" ]; then
    python docs/bench/field_scale_sweep.py --stage2 "$tiles/export-onnx" --no-stage1 --out "$tiles/scale-sweep.json"
fi
echo "tiles: done ($tiles/scale-sweep.json)"
run stride8 train/configs/field/stride8.yaml runs/field/stride8
run native train/configs/field/native.yaml runs/field/native
# The baseline trained 60 epochs more (the committed first stage), paired against the baseline alone and in the
# cascade (the committed second stage behind both).
first=runs/field/insulator-more
train train/configs/field/insulator-more.yaml "$first"
report "$first/against-committed.json" inspector eval --model "$first/export-onnx" \
    --against runs/field-insulator/export-onnx --held-out-of train/configs/field-insulator.yaml --bootstrap 1000
against "first stage, more epochs" train/configs/field/insulator-more.yaml "$first" \
    docs/bench/field-insulator-more/field-insulator-more.yaml docs/bench/field-insulator-more/field-insulator-60.yaml
