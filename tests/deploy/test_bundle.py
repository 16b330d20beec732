"""The bundle from build to box: install into a temporary root, upgrade, a failed upgrade rolls back, a
tampered bundle is refused, an offline install with no network at all, and an aarch64/Python 3.9 bundle for a
real Atlas box. The daemon runs for real (mock device) under start/stop hooks standing in for systemd; the
unit itself is checked with systemd-analyze and the scripts with shellcheck."""

import json
import os
import pathlib
import shutil
import subprocess
import sysconfig
import tarfile

import pytest
import yaml

from deploy.bundle import (SDK_PROTOBUF, BundleError, SOURCE_ROOT, Target, box_requirements, build_bundle, build_wheel,
                           download_dependencies, runtime_requirements)
from deploy.convert import convert
from tests.support.clips import DEMO_CLIP
from tests.support.om import prepared_om

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def om_dir(tiny_model_dir, tmp_path_factory):
    return prepared_om(tiny_model_dir, tmp_path_factory.mktemp("om") / "model")


def make_bundle(om_dir, tmp, root, version, camera_url, wheelhouse):
    config = tmp / f"daemon-{version}.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"id": "cam", "url": str(camera_url), "loop": True}], "model": str(om_dir),
        "output": {"directory": str(root / "var/lib/inspector/out")}, "summary_interval_s": 2,
        "http": {"port": 0}}))  # any free port: a daemon on this machine may hold the default one
    archive = build_bundle(om_dir, config, tmp / "dist", version, find_links=str(wheelhouse))
    extracted = tmp / f"x-{version}"
    with tarfile.open(archive) as tar:
        tar.extractall(extracted, filter="data")
    return extracted / f"inspector-{version}"


def install(bundle, root, *extra, timeout=300, offline=False):
    current = root / "opt/inspector/current"
    start = (f"nohup {current}/venv/bin/inspector run --config {current}/config/daemon.yaml > {root}/daemon.log 2>&1 &"
             f" echo $! > {root}/daemon.pid")
    stop = f"pid=$(cat {root}/daemon.pid); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.2; done"
    site = sysconfig.get_paths()["purelib"]  # this environment's packages: no download during tests
    return subprocess.run(["bash", str(bundle / "install.sh"), "--root", str(root), "--no-deps", "--extra-site", site,
                           "--health-timeout", "60", "--start-cmd", start, "--stop-cmd", stop, *extra],
                          capture_output=True, text=True, timeout=timeout)


def stop_installed(root) -> None:
    """The daemon an install started (its pid in <root>/daemon.pid), if one is running."""
    pid = root / "daemon.pid"
    if pid.exists():
        subprocess.run(["bash", "-c", f"kill $(cat {pid}) 2>/dev/null; sleep 1"])


def current_version(root):
    return os.readlink(root / "opt/inspector/current")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="giving the stand-in SDK to another user needs root")
def test_a_cascade_installs_and_runs_as_the_sdks_owner(om_dir, stage2_model_dir, tmp_path, wheelhouse):
    """A bundle with a second stage: stage2/ installed beside the model (mode 640), validate passes on it, the
    daemon runs healthy, and the unit runs as the owner of the MindX SDK's libmxbase.so, which the SDK demands
    (DeviceManager.cpp UserPermissionCheck)."""
    root = tmp_path / "root"
    om2 = tmp_path / "stage2-om"
    env_path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"  # convert writes the AIPP and the manifest; no atc here
    try:
        convert(stage2_model_dir, om2)
    finally:
        os.environ["PATH"] = env_path
    (om2 / "model.om").write_bytes(b"stand-in for the second OM")
    sdk = tmp_path / "mxVision"
    (sdk / "lib").mkdir(parents=True)
    (sdk / "set_env.sh").write_text(f"export MX_SDK_HOME={sdk}\n")
    (sdk / "lib/libmxbase.so").write_bytes(b"stand-in")
    os.chown(sdk / "lib/libmxbase.so", 65534, 65534)  # installed by `nobody`
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"id": "cam", "url": str(DEMO_CLIP), "loop": True}], "model": str(om_dir),
        "output": {"directory": str(root / "var/lib/inspector/out")}, "summary_interval_s": 2,
        "stage2": {"model": str(om2)}}))
    archive = build_bundle(om_dir, config, tmp_path / "dist", "1.0.0", find_links=str(wheelhouse))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    try:
        result = install(tmp_path / "x/inspector-1.0.0", root, "--mxvision-env", str(sdk / "set_env.sh"))
        assert result.returncode == 0, result.stdout + result.stderr
        release = root / "opt/inspector/releases/1.0.0"
        assert oct((release / "stage2/model.om").stat().st_mode & 0o777) == "0o640"
        assert (release / "stage2/manifest.json").is_file()
        owner = subprocess.run(["id", "-nu", "65534"], capture_output=True, text=True).stdout.strip()
        unit = (root / "etc/systemd/system/inspector.service").read_text()
        assert f"\nUser={owner}\n" in unit and "\nUser=inspector\n" not in unit
        assert f"runs as {owner}, the owner of {sdk}/lib/libmxbase.so" in result.stdout
        status = json.loads((root / "var/lib/inspector/out/status.json").read_text())
        assert status["state"] == "running" and status["cameras"][0]["processed"] > 0
    finally:
        stop_installed(root)


@pytest.mark.slow
def test_install_upgrade_and_rollback(om_dir, tmp_path, wheelhouse):
    root = tmp_path / "root"
    try:
        v1 = make_bundle(om_dir, tmp_path, root, "1.0.0", DEMO_CLIP, wheelhouse)
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

        v2 = make_bundle(om_dir, tmp_path, root, "2.0.0", DEMO_CLIP, wheelhouse)
        result = install(v2, root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "installed 2.0.0 (previous: 1.0.0)" in result.stdout
        assert os.readlink(root / "opt/inspector/previous") == "releases/1.0.0"

        # 3.0.0 names a camera file that does not exist: `inspector validate` refuses it, nothing is switched.
        v3 = make_bundle(om_dir, tmp_path, root, "3.0.0", tmp_path / "no-such-clip.mp4", wheelhouse)
        result = install(v3, root)
        assert result.returncode == 1 and "nothing was switched" in result.stderr
        assert "no-such-clip.mp4 is not a file" in result.stderr + result.stdout
        assert current_version(root) == "releases/2.0.0"

        # 4.0.0 validates but never gets a frame (its camera never answers): rolled back to 2.0.0.
        v4 = make_bundle(om_dir, tmp_path, root, "4.0.0", "rtsp://127.0.0.1:9/never", wheelhouse)
        result = install(v4, root)
        assert result.returncode == 1
        assert "did not report healthy" in result.stdout and "rolled back to 2.0.0 (healthy)" in result.stderr
        assert current_version(root) == "releases/2.0.0"
        assert (root / "opt/inspector/releases/4.0.0").is_dir()  # kept for inspection
        status = json.loads((root / "var/lib/inspector/out/status.json").read_text())
        assert status["state"] == "running"
    finally:
        stop_installed(root)


def test_tampered_bundle_is_refused(om_dir, tmp_path, wheelhouse):
    root = tmp_path / "root"
    bundle = make_bundle(om_dir, tmp_path, root, "1.0.0", DEMO_CLIP, wheelhouse)
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


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=SOURCE_ROOT, capture_output=True,
                          text=True).stdout


def test_bundle_contents_and_no_secrets(om_dir, stage2_model_dir, tmp_path, monkeypatch, wheelhouse):
    monkeypatch.setenv("CAM_PASSWORD", "hunter2")
    om2 = tmp_path / "stage2-om"
    with monkeypatch.context() as env:
        env.setenv("PATH", "/nonexistent")  # convert writes the AIPP and the manifest; no atc here
        convert(stage2_model_dir, om2)
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"cameras": [{"id": "c", "url": "rtsp://viewer:${CAM_PASSWORD}@10.0.0.7/s"}],
                                      "model": str(om_dir), "output": {"directory": "/var/lib/inspector/out"},
                                      "stage2": {"model": str(om2)}}))
    before = git_status()
    archive = build_bundle(om_dir, config, tmp_path / "dist", "9.9.9", find_links=str(wheelhouse))
    assert git_status() == before  # bundling writes nothing into the source tree (no build/, no egg-info)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        contents = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    base = "inspector-9.9.9/"
    for name in ("VERSION", "bundle.json", "SHA256SUMS", "install.sh", "requirements.lock", "config/daemon.yaml",
                 "config/pipeline.json", "systemd/inspector.service", "model/manifest.json", "model/model.onnx",
                 "model/aipp.cfg", "model/model.om", "stage2/manifest.json", "stage2/aipp.cfg"):
        assert base + name in names, name
    assert any(n.startswith(base + "wheels/inspector-") and n.endswith(".whl") for n in names)
    assert b"hunter2" not in contents and b"${CAM_PASSWORD}" in contents
    assert base + "bin/inspector-env" in names
    wheels = {n.split("/")[-1].split("-")[0].lower() for n in names if n.startswith(base + "wheels/")}
    assert {"numpy", "onnxruntime", "av", "pydantic", "paho_mqtt", "prometheus_client"} <= wheels
    assert not wheels & {"mindspore", "pycocotools", "matplotlib", "onnx", "tqdm"}  # the box never trains
    with tarfile.open(archive) as tar:
        lock = tar.extractfile(base + "requirements.lock").read().decode()
        bundle_json = json.loads(tar.extractfile(base + "bundle.json").read())
        installed = yaml.safe_load(tar.extractfile(base + "config/daemon.yaml").read())
        graph = json.loads(tar.extractfile(base + "config/pipeline.json").read())
    # The second model is found beside the first, on the box as in the graph.
    assert installed["stage2"]["model"] == "../stage2"
    model_path = graph["inspector_stage2"]["mxpi_tensorinfer1"]["props"]["modelPath"]
    assert model_path == "/opt/inspector/current/stage2/model.om"
    lines = lock.splitlines()
    assert lines and all(" --hash=sha256:" in line for line in lines) and any(l.startswith("numpy==") for l in lines)
    assert bundle_json["target"] == Target.host().to_dict()


@pytest.mark.parametrize("device, edit, message", [
    ("ascend", None, "model/model.om: missing: the Ascend device runs the OM"),  # an export never converted
    ("mock", {"thresholds": {"per_class": {"tower": 0.5}}}, "thresholds.per_class.tower: not a class of the model"),
    ("mock", {"batching": {"max_batch": 3}}, "batching.max_batch: 3 is not one of the model's dynamic-batch gears"),
])
def test_a_bundle_that_would_not_start_is_refused_before_anything_is_built(tiny_model_dir, tmp_path, device, edit,
                                                                           message):
    """The bundle runs validate's checks on what it packs (the box's variables and directories aside)."""
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"cameras": [{"id": "cam", "url": "rtsp://10.0.0.1/s", "codec": "h264"}],
                                      "model": str(tiny_model_dir), "device": device,
                                      "output": {"directory": "/var/lib/inspector/out"}, **(edit or {})}))
    with pytest.raises(BundleError, match="the bundle would not start on the box") as refused:
        build_bundle(tiny_model_dir, config, tmp_path / "dist", "1.0.0", find_links=str(tmp_path / "none"))
    assert message in str(refused.value) and "inspector-1.0.0/" not in str(refused.value)  # packed paths
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_unit_and_scripts_pass_the_linters(tmp_path):
    for tool in ("shellcheck", "systemd-analyze"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (tests/setup-system.sh installs it)")
    result = subprocess.run(["shellcheck", "deploy/files/install.sh", "deploy/files/inspector-env",
                             "tests/setup-system.sh", ".ci/run"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    # systemd-analyze checks that the commands exist: verify a copy whose paths point into a fake install.
    fake = tmp_path / "opt/inspector/current/bin"
    fake.mkdir(parents=True)
    (fake / "inspector-env").write_text("#!/bin/sh\n")
    (fake / "inspector-env").chmod(0o755)
    unit = tmp_path / "inspector.service"
    unit.write_text((REPO / "deploy/files/inspector.service").read_text().replace("/opt/inspector", str(tmp_path / "opt/inspector")))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


@pytest.mark.slow
def test_offline_install_with_no_network_at_all(om_dir, tmp_path, wheelhouse):
    """The bundle's own wheels, installed in a network namespace without any network (no index, no pip
    configuration, no PIP_* variables): the daemon starts from the new venv and reports healthy."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare --net)")
    root = tmp_path / "root"
    bundle = make_bundle(om_dir, tmp_path, root, "1.0.0", DEMO_CLIP, wheelhouse)
    current = root / "opt/inspector/current"
    start = (f"nohup {current}/bin/inspector-env run --config {current}/config/daemon.yaml > {root}/daemon.log 2>&1 &"
             f" echo $! > {root}/daemon.pid")
    stop = f"pid=$(cat {root}/daemon.pid); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.2; done"
    script = (f"ip link set lo up; exec bash {bundle / 'install.sh'} --root {root} --health-timeout 90 "
              f"--cann-env {tmp_path / 'no-cann/set_env.sh'} --start-cmd '{start}' --stop-cmd '{stop}'")
    try:
        result = subprocess.run(["unshare", "--net", "bash", "-c", script], capture_output=True, text=True,
                                timeout=600, env=dict(os.environ, PIP_INDEX_URL="http://127.0.0.1:9/simple"))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "installed 1.0.0" in result.stdout
        venv = root / "opt/inspector/releases/1.0.0/venv"
        listed = subprocess.run([str(venv / "bin/python"), "-m", "pip", "list", "--format=freeze"],
                                capture_output=True, text=True).stdout.lower()
        assert "onnxruntime==" in listed and "mindspore" not in listed
        ascend_env = (root / "etc/inspector/ascend.env").read_text()
        assert str(tmp_path / "no-cann/set_env.sh") in ascend_env and "/usr/local/Ascend/mxVision/set_env.sh" in ascend_env
        log = (root / "daemon.log").read_text()
        assert "no-cann/set_env.sh not found: the MindX SDK will not import" in log
    finally:
        stop_installed(root)


@pytest.mark.slow
def test_an_atlas_bundle_resolves_every_wheel_for_aarch64_and_python_39(tmp_path):
    """What a real Atlas box needs: every runtime dependency as a binary wheel for aarch64, CPython 3.9,
    manylinux2014 (downloaded from the package index)."""
    target = Target.parse("linux_aarch64", "3.9", None)
    wheel = build_wheel(tmp_path / "wheel")
    wheels = tmp_path / "wheels"
    download_dependencies(runtime_requirements(wheel), target, wheels)
    names = sorted(p.name for p in wheels.glob("*.whl"))
    project = {n.split("-")[0].lower() for n in names}
    assert {"numpy", "opencv_python_headless", "av", "pyyaml", "pydantic", "pydantic_core", "paho_mqtt",
            "prometheus_client", "onnxruntime"} <= project, names
    for name in names:
        tags = name[:-4].split("-")[-3:]  # python, abi, platform
        assert tags[2] == "any" or "aarch64" in tags[2], name
        assert tags[2] == "any" or tags[0] in ("cp39", "cp37", "cp38", "py3") or tags[1] == "abi3", name
        if "manylinux" in tags[2]:
            glibc = [tuple(int(v) for v in t.split("_")[1:3]) for t in tags[2].split(".") if t.startswith("manylinux_")]
            assert not glibc or min(glibc) <= (2, 17), name


@pytest.mark.slow
def test_an_ascend_bundle_carries_the_sdks_protobuf_and_no_cpu_runtime(tmp_path):
    """The box runs the OM: no onnxruntime (whose protobuf 6 would shadow the one the SDK's SendProtobuf needs),
    protobuf 4.25.1 instead (api_Python.md "SendProtobuf"), for aarch64 / CPython 3.9."""
    wheel = build_wheel(tmp_path / "wheel")
    requirements = box_requirements(runtime_requirements(wheel), "ascend")
    assert SDK_PROTOBUF in requirements and not any(r.startswith("onnxruntime") for r in requirements)
    assert box_requirements(runtime_requirements(wheel), "mock") == runtime_requirements(wheel)
    wheels = tmp_path / "wheels"
    download_dependencies(requirements, Target.parse("linux_aarch64", "3.9", None), wheels)
    names = sorted(p.name.lower() for p in wheels.glob("*.whl"))
    assert [n.split("-")[1] for n in names if n.startswith("protobuf-")] == ["4.25.1"], names
    assert not [n for n in names if n.startswith("onnxruntime")], names
    host = tmp_path / "host"  # the 3.11 constraints pin another protobuf: the SDK's pin wins
    download_dependencies([SDK_PROTOBUF], Target.host(), host)
    assert [p.name for p in host.glob("protobuf-*")][0].startswith("protobuf-4.25.1")


@pytest.mark.parametrize("present, expected", [(("nnrt",), "nnrt"), (("nnae", "nnrt"), "nnae"),
                                               (("ascend-toolkit", "nnae"), "ascend-toolkit")])
def test_inspector_env_finds_cann_as_toolkit_nnae_or_nnrt(tmp_path, present, expected):
    """Inference boxes often carry only nnae or nnrt, not the toolkit: bin/inspector-env sources the first."""
    ascend = tmp_path / "Ascend"
    for name in present:
        (ascend / name).mkdir(parents=True)
        (ascend / name / "set_env.sh").write_text(f"export CANN_FOUND={name}\n")
    release = tmp_path / "release"
    (release / "bin").mkdir(parents=True)
    (release / "venv/bin").mkdir(parents=True)
    shutil.copy(REPO / "deploy/files/inspector-env", release / "bin/inspector-env")
    (release / "venv/bin/inspector").write_text("#!/bin/sh\necho \"cann=$CANN_FOUND\"\n")
    (release / "venv/bin/inspector").chmod(0o755)
    result = subprocess.run(["bash", str(release / "bin/inspector-env")], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "INSPECTOR_ASCEND_ENV": "/nonexistent",
                                 "ASCEND_HOME": str(ascend)})
    assert result.stdout.strip() == f"cann={expected}", result.stdout + result.stderr
