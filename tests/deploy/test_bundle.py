"""The bundle from build to box: install into a temporary root, upgrade, a failed upgrade rolls back, and a
tampered bundle is refused. The daemon runs for real (mock device) under start/stop hooks standing in for
systemd; the unit itself is checked with systemd-analyze and the scripts with shellcheck."""

import json
import os
import pathlib
import shutil
import subprocess
import sysconfig
import tarfile

import pytest
import yaml

from deploy.bundle import build_bundle
from deploy.convert import convert
from tests.support.clips import DEMO_CLIP

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def om_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("om") / "model"
    env_path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        convert(tiny_model_dir, out)
    finally:
        os.environ["PATH"] = env_path
    (out / "model.om").write_bytes(b"stand-in for the OM atc would write")
    return out


def make_bundle(om_dir, tmp, root, version, camera_url):
    config = tmp / f"daemon-{version}.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"id": "cam", "url": str(camera_url), "loop": True}], "model": str(om_dir),
        "output": {"directory": str(root / "var/lib/inspector/out")}, "summary_interval_s": 2}))
    archive = build_bundle(om_dir, config, tmp / "dist", version)
    extracted = tmp / f"x-{version}"
    with tarfile.open(archive) as tar:
        tar.extractall(extracted, filter="data")
    return extracted / f"inspector-{version}"


def install(bundle, root, *extra, timeout=300):
    current = root / "opt/inspector/current"
    start = (f"nohup {current}/venv/bin/inspector run --config {current}/config/daemon.yaml > {root}/daemon.log 2>&1 &"
             f" echo $! > {root}/daemon.pid")
    stop = f"pid=$(cat {root}/daemon.pid); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.2; done"
    site = sysconfig.get_paths()["purelib"]  # this environment's packages: no download during tests
    return subprocess.run(["bash", str(bundle / "install.sh"), "--root", str(root), "--no-deps", "--extra-site", site,
                           "--health-timeout", "60", "--start-cmd", start, "--stop-cmd", stop, *extra],
                          capture_output=True, text=True, timeout=timeout)


def current_version(root):
    return os.readlink(root / "opt/inspector/current")


@pytest.mark.slow
def test_install_upgrade_and_rollback(om_dir, tmp_path):
    root = tmp_path / "root"
    try:
        v1 = make_bundle(om_dir, tmp_path, root, "1.0.0", DEMO_CLIP)
        result = install(v1, root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "installed 1.0.0" in result.stdout and current_version(root) == "releases/1.0.0"
        status = json.loads((root / "var/lib/inspector/out/status.json").read_text())
        assert status["state"] == "running" and status["cameras"][0]["processed"] > 0
        env_file = root / "etc/inspector/inspector.env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        assert oct((root / "opt/inspector/releases/1.0.0/model/model.om").stat().st_mode & 0o777) == "0o640"

        again = install(v1, root)  # idempotent
        assert again.returncode == 0 and "already installed" in again.stdout

        v2 = make_bundle(om_dir, tmp_path, root, "2.0.0", DEMO_CLIP)
        result = install(v2, root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "installed 2.0.0 (previous: 1.0.0)" in result.stdout
        assert os.readlink(root / "opt/inspector/previous") == "releases/1.0.0"

        # 3.0.0 names a camera file that does not exist: `inspector validate` refuses it, nothing is switched.
        v3 = make_bundle(om_dir, tmp_path, root, "3.0.0", tmp_path / "no-such-clip.mp4")
        result = install(v3, root)
        assert result.returncode == 1 and "nothing was switched" in result.stderr
        assert "no-such-clip.mp4 is not a file" in result.stderr + result.stdout
        assert current_version(root) == "releases/2.0.0"

        # 4.0.0 validates but never gets a frame (its camera never answers): rolled back to 2.0.0.
        v4 = make_bundle(om_dir, tmp_path, root, "4.0.0", "rtsp://127.0.0.1:9/never")
        result = install(v4, root)
        assert result.returncode == 1
        assert "did not report healthy" in result.stdout and "rolled back to 2.0.0 (healthy)" in result.stderr
        assert current_version(root) == "releases/2.0.0"
        assert (root / "opt/inspector/releases/4.0.0").is_dir()  # kept for inspection
        status = json.loads((root / "var/lib/inspector/out/status.json").read_text())
        assert status["state"] == "running"
    finally:
        pid = root / "daemon.pid"
        if pid.exists():
            subprocess.run(["bash", "-c", f"kill $(cat {pid}) 2>/dev/null; sleep 1"])


def test_tampered_bundle_is_refused(om_dir, tmp_path):
    root = tmp_path / "root"
    bundle = make_bundle(om_dir, tmp_path, root, "1.0.0", DEMO_CLIP)
    config = bundle / "config" / "daemon.yaml"
    config.write_text(config.read_text().replace("summary_interval_s: 2", "summary_interval_s: 3"))
    result = install(bundle, root)
    assert result.returncode == 1
    assert "checksum verification failed" in result.stderr and "config/daemon.yaml" in result.stderr
    assert not (root / "opt").exists()  # nothing was written
    shutil.copy(bundle / "VERSION", bundle / "extra-file")
    config.write_text(config.read_text().replace("summary_interval_s: 3", "summary_interval_s: 2"))
    result = install(bundle, root)
    assert result.returncode == 1 and "files not covered by SHA256SUMS: extra-file" in result.stderr


def test_bundle_contents_and_no_secrets(om_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "hunter2")
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"cameras": [{"id": "c", "url": "rtsp://viewer:${CAM_PASSWORD}@10.0.0.7/s"}],
                                      "model": str(om_dir), "output": {"directory": "/var/lib/inspector/out"}}))
    archive = build_bundle(om_dir, config, tmp_path / "dist", "9.9.9")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        contents = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    base = "inspector-9.9.9/"
    for name in ("VERSION", "bundle.json", "SHA256SUMS", "install.sh", "requirements.lock", "config/daemon.yaml",
                 "config/pipeline.json", "systemd/inspector.service", "model/manifest.json", "model/model.onnx",
                 "model/aipp.cfg", "model/model.om"):
        assert base + name in names, name
    assert any(n.startswith(base + "wheels/inspector-") and n.endswith(".whl") for n in names)
    assert b"hunter2" not in contents and b"${CAM_PASSWORD}" in contents
    assert b"mindspore==2.10.0" in contents  # the pinned dependency list


def test_unit_and_scripts_pass_the_linters(tmp_path):
    for tool in ("shellcheck", "systemd-analyze"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (tests/setup-system.sh installs it)")
    result = subprocess.run(["shellcheck", "deploy/files/install.sh", "tests/setup-system.sh", ".ci/run"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    # systemd-analyze checks that the commands exist: verify a copy whose paths point into a fake install.
    fake = tmp_path / "opt/inspector/current/venv/bin"
    fake.mkdir(parents=True)
    (fake / "inspector").write_text("#!/bin/sh\n")
    (fake / "inspector").chmod(0o755)
    unit = tmp_path / "inspector.service"
    unit.write_text((REPO / "deploy/files/inspector.service").read_text().replace("/opt/inspector", str(tmp_path / "opt/inspector")))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
