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
# The cascade: the defects on crops around the baseline's insulators, evaluated end to end.
stage2=runs/field/defects-stage2
if [ ! -f "$stage2/export-onnx/manifest.json" ]; then
    inspector train --config train/configs/field/defects-stage2.yaml --resume --no-progress
fi
if [ ! -f "$stage2/cascade-eval.json" ]; then
    inspector eval --model runs/field-insulator/export-onnx --stage2 "$stage2/export-onnx" \
        --held-out-of train/configs/field-insulator.yaml > "$stage2/cascade-eval.json.tmp"
    mv "$stage2/cascade-eval.json.tmp" "$stage2/cascade-eval.json"
fi
echo "cascade: done ($stage2/cascade-eval.json)"
# The same second stage trained 60 epochs more (the committed one), measured paired against the cascade above
# as the field config deploys each.
more=runs/field/defects-stage2-more
if [ ! -f "$more/export-onnx/manifest.json" ]; then
    inspector train --config train/configs/field/defects-stage2-more.yaml --resume --no-progress
fi
if [ ! -f "$more/cascade-against.json" ]; then
    inspector eval --config docs/bench/field-defects-stage2-more/field-stage2-more.yaml \
        --against docs/bench/field-defects-stage2-more/field-stage2.yaml \
        --held-out-of train/configs/field-insulator.yaml --bootstrap 1000 > "$more/cascade-against.json.tmp"
    mv "$more/cascade-against.json.tmp" "$more/cascade-against.json"
fi
echo "more epochs: done ($more/cascade-against.json)"
# A third cosine, against the committed second stage (it loses: not shipped).
more2=runs/field/defects-stage2-more2
if [ ! -f "$more2/export-onnx/manifest.json" ]; then
    inspector train --config train/configs/field/defects-stage2-more2.yaml --resume --no-progress
fi
if [ ! -f "$more2/cascade-against.json" ]; then
    inspector eval --config docs/bench/field-defects-stage2-more2/field-stage2-more2.yaml \
        --against docs/bench/field-defects-stage2-more/field-stage2-more.yaml \
        --held-out-of train/configs/field-insulator.yaml --bootstrap 1000 > "$more2/cascade-against.json.tmp"
    mv "$more2/cascade-against.json.tmp" "$more2/cascade-against.json"
fi
echo "a third cosine: done ($more2/cascade-against.json)"
run anchors train/configs/field/anchors.yaml runs/field/anchors
run rotate90 train/configs/field/rotate90.yaml runs/field/rotate90
# The second stage on tiles of every size, then its figures at each deployed tile size.
tiles=runs/field/defects-stage2-tiles
if [ ! -f "$tiles/export-onnx/manifest.json" ]; then
    inspector train --config train/configs/field/defects-stage2-tiles.yaml --resume --no-progress
fi
if [ ! -f "$tiles/scale-sweep.json" ]; then
    python docs/bench/field_scale_sweep.py --stage2 "$tiles/export-onnx" --no-stage1 --out "$tiles/scale-sweep.json"
fi
echo "tiles: done ($tiles/scale-sweep.json)"
run stride8 train/configs/field/stride8.yaml runs/field/stride8
run native train/configs/field/native.yaml runs/field/native
