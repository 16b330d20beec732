"""The command line answers a user's mistake with one line naming the file, never a traceback."""

from __future__ import annotations

import json
import logging

import pytest

from inspector.cli import main
from tests.support.clips import DEMO_CLIP
from tests.support.daemon import RunningDaemon


def write_config(tmp_path, model, **overrides) -> str:
    data = {"cameras": [{"id": "a", "url": str(DEMO_CLIP)}], "model": str(model),
            "output": {"directory": str(tmp_path / "out")}, "http": {"enabled": False}}
    data.update(overrides)
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(data))
    return str(path)


def one_line_error(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "onnxruntime" not in line]
    assert lines and expected in lines[-1], err
    assert "Traceback" not in err


def test_a_config_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "daemon.yaml"
    path.write_bytes(b"cameras: [{id: \xe9, url: x}]\nmodel: m\n")
    one_line_error(capsys, ["validate", "--config", str(path)], f"{path}: not UTF-8 text")
    one_line_error(capsys, ["run", "--config", str(path)], f"{path}: not UTF-8 text")


def test_a_damaged_outbox_is_named_and_kept(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "outbox.sqlite").write_bytes(b"this is not a database" * 100)
    one_line_error(capsys, ["run", "--config", write_config(tmp_path, tiny_model_dir)],
                   f"{out / 'outbox.sqlite'}: cannot open the outbox (file is not a database)")
    assert (out / "outbox.sqlite").read_bytes().startswith(b"this is not a database")  # never replaced


def test_render_into_a_missing_directory(tiny_model_dir, tmp_path, capsys):
    target = tmp_path / "missing" / "pipeline.json"
    one_line_error(capsys, ["render", "--config", write_config(tmp_path, tiny_model_dir), "--out", str(target)],
                   f"{target}: No such file or directory")


def test_eval_on_a_directory_without_images_is_refused(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("pycocotools")  # eval: the [train] extra
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(capsys, ["eval", "--model", str(tiny_model_dir), "--data", str(empty)],
                   f"{empty}: no images/ (or JPEGImages/) folder")
    (empty / "images").mkdir()
    (empty / "labels").mkdir()
    # The layout is right, and holds nothing: an mAP of 0.0 over no picture would read like a broken model.
    one_line_error(capsys, ["eval", "--model", str(tiny_model_dir), "--data", str(empty)],
                   f"{empty}: no labelled object in 0 usable pictures read as voc")


def test_eval_skips_an_undecodable_picture_and_refuses_a_wrong_format(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("pycocotools")  # eval: the [train] extra
    from train.testing import write_voc_dataset

    root = write_voc_dataset(tmp_path / "voc", images=16)
    for xml in (root / "labels").glob("*.xml"):  # the tiny model's classes
        xml.write_text(xml.read_text().replace("<name>box<", "<name>insulator<").replace("<name>disc<",
                                                                                          "<name>defect<"))
    (root / "images" / "007.jpg").write_bytes(b"\xff\xd8 not a JPEG after all")
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(root)]) == 0
    captured = capsys.readouterr()
    assert "007.jpg: unreadable image (image left out)" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out)["images"] == 15
    # The same tree read as YOLO finds pictures without one label file: no object, hence no mAP at all.
    one_line_error(capsys, ["eval", "--model", str(tiny_model_dir), "--data", str(root), "--format", "yolo"],
                   f"{root}: no labelled object in 15 usable pictures read as yolo")


def test_an_absurd_export_size_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--cfg", "yolov4-tiny", "--weights", "w", "--classes", "a", "--out", str(tmp_path),
              "--size", "100000"])
    assert info.value.code == 2 and "at most 4096" in capsys.readouterr().err


def test_a_second_daemon_on_the_same_output_is_refused(tiny_model_dir, tmp_path, capsys):
    path = write_config(tmp_path, tiny_model_dir, cameras=[{"id": "a", "url": str(DEMO_CLIP), "loop": True,
                                                            "rate_fps": 10}])
    from pipeline.config import load_config

    with RunningDaemon(load_config(path)) as running:
        running.wait(lambda: (tmp_path / "out" / "status.json").exists(), 60)
        status_before = (tmp_path / "out" / "status.json").read_text()
        one_line_error(capsys, ["run", "--config", path], "is in use by another inspector daemon (pid")
        assert json.loads(status_before)["pid"] == json.loads((tmp_path / "out" / "status.json").read_text())["pid"]
    # Once the first has stopped, the directory is free again.
    assert main(["run", "--config", path, "--duration", "1"]) == 0


def test_a_run_in_which_no_camera_delivered_exits_non_zero(tiny_model_dir, tmp_path, capsys, caplog):
    path = write_config(tmp_path, tiny_model_dir,
                        cameras=[{"id": "dark", "url": "rtsp://127.0.0.1:9/none", "reconnect_max_s": 0.5}],
                        http={"host": "0.0.0.0", "port": 0, "allow_unauthenticated": True})
    with caplog.at_level(logging.WARNING):
        code = main(["run", "--config", path, "--duration", "3"])
    assert code == 1
    assert "no camera delivered a frame: dark (" in capsys.readouterr().err
    # A status page open to the network without a token is allowed only when said so, and said at every start.
    assert "http: serving 0.0.0.0 without a token (allow_unauthenticated)" in caplog.text


@pytest.mark.parametrize("argv, expected", [
    (["plan", "--fps", "0"], "argument --fps: '0': expected a number > 0"),
    (["plan", "--fps", "nan"], "argument --fps: 'nan': expected a number > 0"),
    (["plan", "--camera", "0x0"], "argument --camera: '0x0': width and height must be >= 1"),
    (["plan", "--camera", "wide"], "argument --camera: 'wide': expected WxH"),
    (["plan", "--host-ms", "0"], "argument --host-ms: '0': expected a number > 0"),
    (["plan", "--npu-fps", "-50"], "argument --npu-fps: '-50': expected a number > 0"),
    (["plan", "--batch", "-1"], "argument --batch: '-1': expected an integer >= 1"),
    (["plan", "--crops-per-frame", "-3"], "argument --crops-per-frame: '-3': expected a number >= 0"),
    (["bench", "--stage2", "x", "--seconds", "-1"], "argument --seconds: '-1': expected a number > 0"),
    (["run", "--duration", "inf"], "argument --duration: 'inf': expected a number > 0"),
    (["export", "--cfg", "yolov4-tiny", "--weights", "w", "--classes", "a", "--format", "onnx", "--out", "o",
      "--batch", "-2"], "argument --batch: '-2': expected an integer >= 1"),
    (["export", "--cfg", "yolov4-tiny", "--weights", "w", "--classes", "a", "--format", "onnx", "--out", "o",
      "--batch", "0"], "argument --batch: '0': expected an integer >= 1"),
    (["eval", "--model", "m", "--data", "d", "--parent-score", "nan"],
     "argument --parent-score: 'nan': expected a number from 0 to 1"),
])
def test_numbers_are_checked_where_they_are_typed(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and expected in err and "Traceback" not in err


def test_a_bundle_for_a_glibc_that_is_no_version_is_refused(tiny_model_dir, tmp_path, capsys):
    config = write_config(tmp_path, tiny_model_dir)
    one_line_error(capsys, ["bundle", "--model", str(tiny_model_dir), "--config", config,
                            "--out", str(tmp_path / "b"), "--glibc", "banana"],
                   "--glibc 'banana': expected a version such as 2.17")


@pytest.mark.parametrize("error", ["deploy.convert.ConvertError", "deploy.bundle.BundleError",
                                   "pipeline.devices.base.DeviceError", "pipeline.outputs.outbox.OutboxError",
                                   "models.errors.SpecError", "core.errors.ConfigError"])
def test_every_users_error_is_one_line_and_a_bug_keeps_its_traceback(error, monkeypatch, capsys):
    import argparse
    import importlib

    from inspector import cli

    module, name = error.rsplit(".", 1)
    kind = getattr(importlib.import_module(module), name)

    def parser_raising(exc):
        parser = argparse.ArgumentParser(prog="inspector")
        parser.set_defaults(handler=lambda args: (_ for _ in ()).throw(exc), command="x", verbose=False)
        return parser

    monkeypatch.setattr(cli, "build_parser", lambda: parser_raising(kind("/data/cam.yaml: cameras.0.url: bad")))
    assert cli.main([]) == 1
    assert capsys.readouterr().err.strip() == "inspector x: error: /data/cam.yaml: cameras.0.url: bad"
    monkeypatch.setattr(cli, "build_parser", lambda: parser_raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main([])
