"""`inspector validate` is the deploy gate: what passes it starts. Each config that used to pass validate and
then failed at run time is refused here, with the culprit named and no secret quoted."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from inspector.cli import main
from tests.support.clips import DEMO_CLIP, encode_audio_only
from tests.support.disk import fill

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def write_config(tmp_path, model, **overrides) -> str:
    data = {"cameras": [{"id": "a", "url": str(DEMO_CLIP)}], "model": str(model),
            "output": {"directory": str(tmp_path / "out")}}
    data.update(overrides)
    path = tmp_path / "daemon.yaml"
    path.write_text(json.dumps(data))
    return str(path)


def validate(capsys, path: str) -> tuple[int, str]:
    code = main(["validate", "--config", path])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_a_good_config_is_valid(tiny_model_dir, tmp_path, capsys):
    assert main(["validate", "--config", write_config(tmp_path, tiny_model_dir)]) == 0
    assert capsys.readouterr().out.strip() == "valid"


def test_missing_environment_variables_are_named(tiny_model_dir, tmp_path, capsys, monkeypatch):
    for name in ("CAM_PW", "MQTT_USER", "MQTT_PW", "HOOK_TOKEN", "HTTP_TOKEN", "BOX_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MQTT_PW", "set-but-no-user-var")
    path = write_config(
        tmp_path, tiny_model_dir,
        cameras=[{"id": "tower-3", "url": "rtsp://viewer:${CAM_PW}@127.0.0.1:9/s"}],
        output={"directory": str(tmp_path / "out"),
                "mqtt": {"host": "127.0.0.1", "username_env": "MQTT_USER", "password_env": "MQTT_PW",
                         "topic_prefix": "site/${BOX_ID}"},
                "webhook": {"url": "http://127.0.0.1:9/hook", "token_env": "HOOK_TOKEN"}},
        http={"token_env": "HTTP_TOKEN"})
    code, err = validate(capsys, path)
    assert code == 1
    for culprit in ("cameras[0] (tower-3).url: environment variable CAM_PW is not set",
                    "output.mqtt.username_env: environment variable MQTT_USER is not set",
                    "output.mqtt.topic_prefix: environment variable BOX_ID is not set",
                    "output.webhook.token_env: environment variable HOOK_TOKEN is not set",
                    "http.token_env: environment variable HTTP_TOKEN is not set"):
        assert culprit in err
    assert "MQTT_PW is not set" not in err and "set-but-no-user-var" not in err
    # run refuses the same config before any camera starts (it used to exit 0 with the camera failed).
    assert main(["run", "--config", path]) == 1
    assert "environment variable CAM_PW is not set" in capsys.readouterr().err


def test_mqtt_settings_that_cannot_work_are_named(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MQTT_PW", "pw")
    path = write_config(tmp_path, tiny_model_dir,
                        output={"directory": str(tmp_path / "out"),
                                "mqtt": {"host": "127.0.0.1", "password_env": "MQTT_PW", "tls": True,
                                         "ca_file": str(tmp_path / "ca.pem")}})
    code, err = validate(capsys, path)
    assert code == 1
    assert "output.mqtt: password_env needs username_env" in err
    assert f"output.mqtt.ca_file: {tmp_path / 'ca.pem'} does not exist" in err


def test_an_unwritable_output_directory_is_named(tiny_model_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = validate(capsys, write_config(tmp_path, tiny_model_dir, output={"directory": str(blocker)}))
    assert code == 1 and f"output.directory: {blocker} exists and is not a directory" in err
    code, err = validate(capsys, write_config(tmp_path, tiny_model_dir, output={"directory": str(blocker / "out")}))
    assert code == 1 and f"output.directory: {blocker / 'out'} cannot be created: {blocker} is not a directory" in err


def test_a_truncated_model_is_caught_by_its_checksum(model_copy, tmp_path, capsys):
    onnx_file = model_copy / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    code, err = validate(capsys, write_config(tmp_path, model_copy))
    assert code == 1 and f"{onnx_file}: checksum differs from model.sha256" in err
    # Without the checksum file, loading it fails, named, with no traceback.
    (model_copy / "model.sha256").unlink()
    code, err = validate(capsys, write_config(tmp_path, model_copy))
    assert code == 1 and f"{onnx_file}: ONNX Runtime cannot load it" in err and "Traceback" not in err


def test_a_manifest_that_disagrees_with_the_onnx_is_caught(model_copy, tmp_path, capsys):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["input_height"] = manifest["input_width"] = 416
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    code, err = validate(capsys, write_config(tmp_path, model_copy))
    assert code == 1 and "model.onnx: input shape" in err and "differs from manifest.json's (N, 3, 416, 416)" in err


def test_file_cameras_must_exist_and_hold_video(tiny_model_dir, tmp_path, capsys):
    audio = encode_audio_only(tmp_path / "recording.mka")
    path = write_config(tmp_path, tiny_model_dir, cameras=[{"id": "a", "url": str(audio)},
                                                           {"id": "b", "url": str(tmp_path / "gone.mp4")}])
    code, err = validate(capsys, path)
    assert code == 1
    assert f"cameras[0] (a).url: {audio} has no video stream" in err
    assert f"cameras[1] (b).url: {tmp_path / 'gone.mp4'} is not a file" in err


def test_an_output_directory_on_a_full_disk_is_refused(tiny_model_dir, tmp_path, capsys, small_disk):
    path = write_config(tmp_path, tiny_model_dir, output={"directory": str(small_disk / "out")})
    assert validate(capsys, path)[0] == 0
    filler = fill(small_disk)
    code, err = validate(capsys, path)
    assert code == 1 and f"output.directory: {small_disk / 'out'}: only 0.0 MB free on its file system" in err
    filler.unlink()


def test_a_manifest_whose_classes_are_not_the_models_is_refused(model_copy, tmp_path, capsys):
    """Classes edited in manifest.json (2 -> 3) fail validate and run at once, not at the first detection."""
    from pipeline.config import ConfigError, parse_config
    from pipeline.daemon import Daemon

    manifest = model_copy / "manifest.json"
    data = json.loads(manifest.read_text())
    data["class_names"] = data["class_names"] + ["tower"]
    manifest.write_text(json.dumps(data))
    path = write_config(tmp_path, model_copy)
    code, err = validate(capsys, path)
    assert code == 1 and f"{manifest}: names 3 classes (insulator, defect, tower), but the model scores 2" in err
    with pytest.raises(ConfigError, match="names 3 classes"):
        Daemon(parse_config(json.loads(pathlib.Path(path).read_text())))
    # The manifest made consistent with itself, but not with the ONNX beside it: the model's own outputs tell.
    scores = next(t for t in data["outputs"]["tensors"] if t["name"] == "scores")
    scores["shape"][-1] = 3
    manifest.write_text(json.dumps(data))
    code, err = validate(capsys, path)
    candidates = scores["shape"][1]
    assert code == 1 and f"output 'scores' is ['batch', {candidates}, 2], manifest.json says ['batch', " \
                         f"{candidates}, 3]" in err, err


def test_an_ascend_config_needs_converted_models(tiny_model_dir, tmp_path, capsys):
    code, err = validate(capsys, write_config(tmp_path, tiny_model_dir, device="ascend"))
    assert code == 1 and f"{tiny_model_dir / 'model.om'}: missing: the Ascend device runs the OM" in err
