#!/bin/sh
# The whole transfer experiment (docs/transfer.md), resumable: a finished run (its export exists) is skipped,
# an interrupted one continues from its last.ckpt. From the repository root:
#   sh train/configs/transfer/run-all.sh
set -eu
for name in source-insulator defect-scratch defect-finetune defect-frozen defect-rifle; do
    if [ -f "runs/transfer/$name/export-onnx/manifest.json" ]; then
        echo "$name: done"
        continue
    fi
    inspector train --config "train/configs/transfer/$name.yaml" --resume --no-progress
done
