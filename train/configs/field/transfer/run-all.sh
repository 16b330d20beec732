#!/bin/sh
# The transfer strategies on real defects (docs/transfer.md, "Real photographs"), each with seeds 0 and 1, with a
# quarter of the defect labels first, then all of them; resumable: a finished run (its export exists) is
# skipped, an interrupted one continues from its last.ckpt. From the repository root:
#   sh train/configs/field/transfer/run-all.sh
# then, side by side:
#   inspector train-compare runs/field/transfer/*
# SOURCE=<checkpoint> starts every strategy but scratch from another model, OUT=<folder> puts the runs there:
# the insulator-only source, which never saw a defect label (docs/transfer.md):
#   inspector train --config train/configs/transfer/source-insulator.yaml
#   SOURCE=runs/transfer/source-insulator/best.ckpt OUT=runs/field/transfer-clean sh train/configs/field/transfer/run-all.sh
# LABELS=100 runs only the full-label half (LABELS=25 the quarter), e.g. when the other half is banked already;
# STRATEGIES="lowlr staged" only those, SEEDS="2" only that seed.
set -eu
config=train/configs/field/transfer/defects.yaml
root=${OUT:-runs/field/transfer}
source=""
[ -n "${SOURCE:-}" ] && source="--set transfer.weights=$(realpath "$SOURCE")"  # --set paths: relative to the config
strategy() {  # name, half the epochs: the overrides of defects.yaml (the recipe, lowlr) that make it
    case "$1" in
        scratch) echo "--set transfer.weights=null --set optim.backbone_lr_scale=1" ;;
        finetune) echo "--set optim.backbone_lr_scale=1" ;;  # every layer at the schedule's lr
        frozen) echo "--set transfer.freeze_layers=26 --set optim.backbone_lr_scale=1" ;;  # the backbone, BatchNorm too
        l2sp) echo "--set transfer.l2sp=0.01 --set optim.backbone_lr_scale=1" ;;
        rifle) echo "--set transfer.rifle_every=10 --set optim.backbone_lr_scale=1" ;;  # none in the last 30%
        lowlr) echo "" ;;  # every layer trains, the backbone at a tenth of the lr (defects.yaml as it is)
        staged) echo "--set transfer.freeze_layers=26 --set transfer.unfreeze_epoch=$2 --set optim.backbone_lr_scale=1"
            ;;  # frozen for half the epochs
    esac
}
for labels in ${LABELS:-25 100}; do
    fraction=""
    half=50
    # All the labels: 4.5 times the crops an epoch, so 60 epochs, as the field cascade's own second stage
    # (../defects-stage2.yaml) trains on them.
    [ "$labels" = 100 ] && fraction="--set data.label_fraction={} --set epochs=60" && half=30
    for seed in ${SEEDS:-0 1}; do
        for name in ${STRATEGIES:-scratch frozen finetune l2sp rifle lowlr staged}; do  # the two ends first
            out="$root/$name-$labels-s$seed"
            if [ -f "$out/export-onnx/manifest.json" ]; then
                echo "$name, $labels% of the labels, seed $seed: done"
                continue
            fi
            # shellcheck disable=SC2046,SC2086  # the overrides are words
            inspector train --config "$config" --out "$out" --seed "$seed" $source $(strategy "$name" "$half") \
                $fraction --resume --no-progress
        done
    done
done
