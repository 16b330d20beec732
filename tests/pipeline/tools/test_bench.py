"""The benchmark's pieces measure what they say (small, fast runs; the figures themselves are not asserted)."""

import json

from pipeline.tools import bench
from tests.support.clips import DEMO_CLIP


def test_pieces_run_and_report(tiny_model_dir, tmp_path):
    from models.spec import ModelSpec

    spec = ModelSpec.load(tiny_model_dir)
    decode = bench.decode_only([DEMO_CLIP], frames=20)
    assert decode["per_camera_fps"]["insulators.mp4"] > 0 and decode["parallel_total_fps"] > 0
    inference = bench.inference_only(tiny_model_dir / spec.model_file, spec, [1, 2], in_flight=2, seconds=0.5)
    assert set(inference["images_per_s"]) == {1, 2} and inference["threads_per_session"] >= 1
    naive = bench.naive(tiny_model_dir / spec.model_file, spec, [DEMO_CLIP, DEMO_CLIP], seconds=0.5)
    assert naive["processed_fps"] > 0
    output = tmp_path / "detections.jsonl"
    output.write_text("\n".join(json.dumps({"latency_ms": v}) for v in range(1, 101)) + "\n")
    figures = bench.latencies(str(output))
    assert figures["lines"] == 80 and figures["p50_ms"] == 60.5


def test_paced_file_camera_delivers_at_its_rate(tiny_model_dir, tmp_path):
    result = bench.run_daemon_for({
        "cameras": [{"id": "paced", "url": str(DEMO_CLIP), "loop": True, "mode": "live", "rate_fps": 5}],
        "model": str(tiny_model_dir), "output": {"directory": str(tmp_path)}}, seconds=4, warmup=2)
    # A 5 fps camera: about 5 processed frames per second, never the decoder's hundreds.
    assert 2.5 <= result["processed_fps"] <= 7.5


def test_cascade_bench_measures_both_side_by_side(tmp_path, stage2_model_dir):
    from tests.support.daemon import require_demo_model

    model = require_demo_model()
    report = bench.run_cascade_bench(model, stage2_model_dir, [DEMO_CLIP], [1], 4, 2, seconds=2,
                                     stage2_score=0.02, progress=lambda m: None)
    case = report["cases"][1]
    assert case["single"]["processed_fps"] > 0 and case["cascade"]["processed_fps"] > 0
    assert case["ratio"] == case["cascade"]["processed_fps"] / case["single"]["processed_fps"]
    assert case["single"]["children_per_frame"] == 0 and case["cascade"]["children_per_frame"] > 0
    assert "ratio" in bench.format_cascade_report(report)


def test_a_second_model_whose_classes_are_not_its_own_is_refused_before_measuring(tiny_model_dir, stage2_model_dir,
                                                                                  tmp_path, capsys):
    import shutil

    from inspector.cli import main

    copy = tmp_path / "stage2"
    shutil.copytree(stage2_model_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["class_names"] = ["defect", "flashover"]  # the export scores one class
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["bench", "--model", str(tiny_model_dir), "--stage2", str(copy), "--cameras", "1",
                 "--seconds", "1"]) == 1
    err = capsys.readouterr().err
    assert "stage2.model: " in err and "names 2 classes (defect, flashover), but the model scores 1" in err


def test_a_daemon_that_processes_nothing_is_no_figure(tiny_model_dir, tmp_path):
    import pytest

    from pipeline.config import ConfigError
    from tests.support.clips import encode_clip

    tiny = encode_clip(tmp_path / "tiny.mp4", frames=5, width=16, height=16)  # refused by the decoder
    with pytest.raises(ConfigError, match="processed no frame in 1 s .*tiny failed: the camera's pictures are 16x16"):
        bench.run_daemon_for({"cameras": [{"id": "tiny", "url": str(tiny)}], "model": str(tiny_model_dir),
                              "output": {"directory": str(tmp_path / "out")}}, seconds=1, warmup=1)


def test_two_benchmarks_at_once_are_refused(capsys):
    from inspector.cli import main

    assert main(["bench", "--host-only", "--stage2", "pipeline/demo/stage2"]) == 1
    assert "--host-only and --stage2 are different benchmarks: give one" in capsys.readouterr().err
