#!/bin/sh
# The benchmark runs behind docs/performance.md, one after the other on an otherwise idle machine.
# From the repository root: sh docs/bench/run-all.sh   (about 45 minutes on 2 cores)
# Clips: ../shared/videos (640x360 and 768x432 H.264); the networks are exported with deterministic random
# weights (--cfg), which does not change their speed; the demo model is the bundled trained one.
set -eu
out=docs/bench
run() { name=$1; shift; inspector bench --json "$out/$name.json" --plot "$out/$name.png" "$@" > "$out/$name.txt"; }
run tiny-416 --cfg yolov4-tiny --size 416 --cameras 1,2,4,8 --seconds 15 --soak-seconds 180
run yolov4-416 --cfg yolov4 --size 416 --cameras 1,4 --seconds 30 --soak-seconds 60 --arrangements 1x2,2x1
run tiny-608 --cfg yolov4-tiny --size 608 --cameras 1,4 --seconds 15 --soak-seconds 30 --arrangements ""
# yolov4-608 (about 0.3 images/s here) is not measured: one run would take hours on 2 cores.
# The committed tiny-416-1080p figures were measured shorter: --cameras 4 --seconds 12 --soak-seconds 20.
run tiny-416-1080p --cfg yolov4-tiny --size 416 --resolution 1920x1080 --cameras 1,4 --seconds 15 \
    --soak-seconds 30 --arrangements ""
run demo-320 --cameras 1,2,4,8 --seconds 15 --soak-seconds 30 --arrangements 1x2,2x1
