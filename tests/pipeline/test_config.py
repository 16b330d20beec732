import pytest

from pipeline.config import ConfigError, expand_placeholders, load_config, parse_config, redact_url

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


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
    ("cameras: [{id: a, url: x}]\nmodel: m\nstage2: {model: s, shared_classes: both}\n",
     "stage2.shared_classes: Input should be 'merge' or 'second'"),
    ("cameras: [{id: a, url: x}\n", "not valid YAML"),
])
def test_errors_name_file_key_and_reason(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and where in str(info.value)


@pytest.mark.parametrize("password", ["hunter2", "hun/ter2", "hun ter2", "qua@sar/wiz rdx", "${A}xyz"])
def test_inline_password_is_refused_and_not_echoed(tmp_path, password):
    path = write(tmp_path, f"cameras: [{{id: a, url: 'rtsp://admin:{password}@10.0.0.1/s'}}]\nmodel: m\n")
    with pytest.raises(ConfigError, match="holds a password") as info:
        load_config(path)
    for part in password.replace("/", " ").replace("@", " ").split():
        assert part not in str(info.value), part


@pytest.mark.parametrize("text, where", [
    ("thresholds: {per_class: {defect: 7}}", "thresholds.per_class.defect: Input should be less than 1"),
    ("thresholds: {per_class: {defect: -3}}", "thresholds.per_class.defect: Input should be greater than 0"),
    ("thresholds: {per_class: {defect: .nan}}", "thresholds.per_class.defect"),
    ("batching: {max_batch: true}", "batching.max_batch: Input should be a valid integer"),
    ("cameras: [{id: a, url: x, loop: 'yes'}]", "cameras.0.loop: Input should be a valid boolean"),
    ("batching: {waiting_time_ms: '40'}", "batching.waiting_time_ms"),
    ("thresholds: {score: '0.3'}", "thresholds.score"),
])
def test_types_are_strict(tmp_path, text, where):
    base = {"cameras": "cameras: [{id: a, url: x}]"}
    key = text.split(":", 1)[0]
    lines = [text] + [v for k, v in base.items() if k != key] + ["model: m"]
    with pytest.raises(ConfigError, match=where.replace(".", "\\.")):
        load_config(write(tmp_path, "\n".join(lines) + "\n"))


def test_lenient_where_yaml_has_no_other_way(tmp_path):
    # An int is a valid float, and a polygon's corners are YAML lists.
    config = load_config(write(tmp_path, "cameras: [{id: a, url: x, zones: [{name: z, polygon: [[0, 0], [1, 0], "
                                         "[1, 1]]}]}]\nmodel: m\nthresholds: {score: 1e-1, nms_iou: 1}\n"))
    assert config.cameras[0].zones[0].polygon[1] == [1.0, 0.0] and config.thresholds.nms_iou == 1.0
    with pytest.raises(ConfigError, match="polygon"):
        load_config(write(tmp_path, "cameras: [{id: a, url: x, zones: [{name: z, polygon: [[0, 0, 1], [1, 0], "
                                    "[1, 1]]}]}]\nmodel: m\n"))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.20.0.5", "inspector-box.local"])
def test_a_network_facing_status_page_needs_a_token(tmp_path, host):
    text = f"cameras: [{{id: a, url: x}}]\nmodel: m\nhttp: {{host: '{host}'}}\n"
    with pytest.raises(ConfigError, match="http: .*reachable from the network and no token_env"):
        load_config(write(tmp_path, text))
    assert load_config(write(tmp_path, text.replace("}\n", ", token_env: T}\n"))).http.token_env == "T"
    assert load_config(write(tmp_path, text.replace("}\n", ", allow_unauthenticated: true}\n"))).http.host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "localhost"])
def test_loopback_needs_no_token(tmp_path, host):
    assert load_config(write(tmp_path, f"cameras: [{{id: a, url: x}}]\nmodel: m\nhttp: {{host: '{host}'}}\n")).http.loopback


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_bytes("cameras: [{id: caméra, url: x}]\nmodel: m\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"{path}: not UTF-8 text"):
        load_config(path)


def test_placeholders_expand_from_the_environment(monkeypatch):
    config = parse_config({"cameras": [{"id": "a", "url": "rtsp://admin:${CAM_PASS}@10.0.0.1/s"}], "model": "m"})
    monkeypatch.setenv("CAM_PASS", "s3cret")
    assert expand_placeholders(config.cameras[0].url, "a") == "rtsp://admin:s3cret@10.0.0.1/s"
    monkeypatch.delenv("CAM_PASS")
    with pytest.raises(ConfigError, match="camera a: url: environment variable CAM_PASS is not set"):
        expand_placeholders(config.cameras[0].url, "camera a: url")


@pytest.mark.parametrize("url", ["rtsp://10.0.0.1/live?user=op&password=hunter2",
                                 "rtsp://10.0.0.1/live?channel=1&PWD=hunter2", "rtsp://10.0.0.1/live?token=hunter2"])
def test_a_password_in_the_query_is_refused_and_redacted(tmp_path, url):
    path = write(tmp_path, f"cameras: [{{id: a, url: '{url}'}}]\nmodel: m\n")
    with pytest.raises(ConfigError, match="holds a password") as info:
        load_config(path)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in redact_url(url) and "hunter2" not in redact_url(f"failed: {url} (401)")
    ok = url.replace("hunter2", "${CAM_PW}")
    assert load_config(write(tmp_path, f"cameras: [{{id: a, url: '{ok}'}}]\nmodel: m\n")).cameras[0].url == ok


def test_redact_url():
    assert redact_url("rtsp://admin:s3cret@10.0.0.1:554/s") == "rtsp://admin:***@10.0.0.1:554/s"
    assert redact_url("rtsp://10.0.0.1/s") == "rtsp://10.0.0.1/s"
    assert redact_url("rtsp://user@10.0.0.1/s") == "rtsp://user@10.0.0.1/s"
    # Passwords with the characters a URL parser splits on: the userinfo runs to the last '@'.
    assert redact_url("rtsp://admin:ab/cd@10.0.0.1/s") == "rtsp://admin:***@10.0.0.1/s"
    assert redact_url("rtsp://admin:a b@c@10.0.0.1/s") == "rtsp://admin:***@10.0.0.1/s"
    assert redact_url("open failed: rtsp://admin:ab/cd@10.0.0.1/s (401)") == \
        "open failed: rtsp://admin:***@10.0.0.1/s (401)"
