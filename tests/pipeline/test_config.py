import pytest

from pipeline.config import ConfigError, expand_placeholders, load_config, parse_config, redact_url


def write(tmp_path, text):
    path = tmp_path / "daemon.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path):
    path = write(tmp_path, "cameras:\n  - {id: a, url: 'rtsp://cam/x'}\n  - {id: b, url: clip.mp4}\nmodel: m\n")
    config = load_config(path)
    assert config.cameras[0].effective_mode == "live" and config.cameras[1].effective_mode == "file"
    assert config.cameras[1].url == str(tmp_path / "clip.mp4")
    assert config.model == str(tmp_path / "m")
    assert config.batching.max_batch == 4 and config.batching.dynamic_strategy == "Upper"


@pytest.mark.parametrize("text, where", [
    ("cameras: [{id: a, url: x}]\nmodel: m\nbatching: {max_bach: 4}\n", "batching.max_bach: Extra inputs"),
    ("cameras: [{id: a, url: x}, {id: a, url: y}]\nmodel: m\n", "is used twice"),
    ("cameras: []\nmodel: m\n", "cameras: List should have at least 1 item"),
    ("cameras: [{id: a, url: x, frame_skip: -1}]\nmodel: m\n", "cameras.0.frame_skip"),
    ("cameras: [{id: 'a b', url: x}]\nmodel: m\n", "cameras.0.id"),
    ("cameras: [{id: a, url: x}]\nmodel: m\nbatching: {dynamic_strategy: Biggest}\n", "batching.dynamic_strategy"),
    ("cameras: [{id: a, url: x}]\n", "model: Field required"),
    ("cameras: [{id: a, url: x}\n", "not valid YAML"),
])
def test_errors_name_file_key_and_reason(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and where in str(info.value)


def test_inline_password_is_refused_and_not_echoed(tmp_path):
    path = write(tmp_path, "cameras: [{id: a, url: 'rtsp://admin:hunter2@10.0.0.1/s'}]\nmodel: m\n")
    with pytest.raises(ConfigError, match="holds a password") as info:
        load_config(path)
    assert "hunter2" not in str(info.value)


def test_placeholders_expand_from_the_environment(monkeypatch):
    config = parse_config({"cameras": [{"id": "a", "url": "rtsp://admin:${CAM_PASS}@10.0.0.1/s"}], "model": "m"})
    monkeypatch.setenv("CAM_PASS", "s3cret")
    assert expand_placeholders(config.cameras[0].url, "a") == "rtsp://admin:s3cret@10.0.0.1/s"
    monkeypatch.delenv("CAM_PASS")
    with pytest.raises(ConfigError, match="camera a: url: environment variable CAM_PASS is not set"):
        expand_placeholders(config.cameras[0].url, "camera a: url")


def test_redact_url():
    assert redact_url("rtsp://admin:s3cret@10.0.0.1:554/s") == "rtsp://admin:***@10.0.0.1:554/s"
    assert redact_url("rtsp://10.0.0.1/s") == "rtsp://10.0.0.1/s"
    assert redact_url("rtsp://user@10.0.0.1/s") == "rtsp://user@10.0.0.1/s"
