"""`inspector bundle`: one versioned archive that installs on an Atlas edge box with one command, offline.

inspector-<version>.tar.gz holds, under inspector-<version>/:
  VERSION, bundle.json        version, creation time, target platform, model facts, file list
  model/                      the converted model directory (OM, AIPP, manifest, the ONNX as CPU fallback)
  stage2/                     the config's second-stage model directory, when it names one (converted too)
  config/daemon.yaml          the daemon config, `model: ../model` (secrets stay ${VAR} placeholders)
  config/pipeline.json        the MindX graph as it will run (informational; the daemon renders it)
  wheels/                     this package's wheel and the wheels of its runtime dependencies, for the target
                              platform and Python (`--platform linux_aarch64 --python 3.9` for an Atlas box;
                              default: this machine's), never MindSpore or the training stack
  requirements.lock           those dependencies as name==version with their sha256: install.sh installs them
                              with --no-index --require-hashes and never reaches a network
  bin/inspector-env           runs `inspector` with CANN's and mxVision's set_env.sh sourced
  systemd/inspector.service   the unit; install.sh the installer; README.md (docs/deploy.md)
  Dockerfile, k8s/            the container alternative and a DaemonSet for many boxes
  SHA256SUMS                  every other file, verified by install.sh before anything is written

Building it needs a package index (or --find-links to a local wheelhouse) for the target's wheels, and writes
nothing into the source tree: the wheel is built from a copy.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import logging
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import List, Optional

import yaml

from core.errors import UserError
from models.errors import ModelError
from models.integrity import sha256_file
from models.spec import ModelSpec
from pipeline.config import load_config
from pipeline.graph import graph_json, render_graph, validate_graph
from pipeline.preflight import model_file_problems
from pipeline.runplan import load_specs

logger = logging.getLogger(__name__)

FILES = pathlib.Path(__file__).resolve().parent / "files"
SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[1]
INSTALL_ROOT = "/opt/inspector/current"
PACKAGES = ("core", "models", "pipeline", "train", "deploy", "inspector")
SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "constraints.txt")
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


class BundleError(UserError):
    """The bundle cannot be built as asked."""


@dataclasses.dataclass(frozen=True)
class Target:
    """The box the bundle is for: its Python (major.minor), machine and oldest glibc."""

    python: str
    machine: str
    glibc: str = "2.17"  # manylinux2014: Ubuntu 18.04 (2.27) and EulerOS 2.8 (2.28) boxes both run it

    @classmethod
    def host(cls) -> "Target":
        libc, version = platform.libc_ver()
        return cls(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine(),
                   version if libc == "glibc" and version else "2.17")

    @classmethod
    def parse(cls, platform_name: Optional[str], python: Optional[str], glibc: Optional[str]) -> "Target":
        host = cls.host()
        machine = host.machine
        if platform_name:
            match = re.fullmatch(r"(?:linux|manylinux\w*)[_-](x86_64|aarch64)", platform_name)
            if not match:
                raise BundleError(f"--platform {platform_name!r}: expected linux_aarch64 or linux_x86_64")
            machine = match.group(1)
        if python and not re.fullmatch(r"3\.\d+", python):
            raise BundleError(f"--python {python!r}: expected a version such as 3.9")
        if glibc and not re.fullmatch(r"2\.\d+", glibc):
            raise BundleError(f"--glibc {glibc!r}: expected a version such as 2.17")
        return cls(python or host.python, machine, glibc or ("2.17" if platform_name else host.glibc))

    @property
    def is_host(self) -> bool:
        host = Target.host()
        return (self.python, self.machine) == (host.python, host.machine)

    def pip_arguments(self) -> List[str]:
        if self.is_host and self.glibc == Target.host().glibc:
            return []
        major, minor = self.glibc.split(".")
        # pip widens manylinux_2_N to every older manylinux tag it is compatible with.
        return ["--platform", f"manylinux_{major}_{minor}_{self.machine}", "--python-version", self.python,
                "--implementation", "cp", "--abi", "cp" + self.python.replace(".", "")]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def copy_source(destination: pathlib.Path) -> pathlib.Path:
    """What the wheel is built from: the packages and packaging files, without caches, venvs or build/."""
    if not (SOURCE_ROOT / "setup.cfg").is_file():
        raise BundleError(f"{SOURCE_ROOT}: no setup.cfg; `inspector bundle` runs from the source tree")
    destination.mkdir(parents=True)
    for name in SOURCE_FILES:
        if (SOURCE_ROOT / name).is_file():
            shutil.copy2(SOURCE_ROOT / name, destination / name)
    for package in PACKAGES:
        shutil.copytree(SOURCE_ROOT / package, destination / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return destination


def build_wheel(out: pathlib.Path) -> pathlib.Path:
    """This package as a wheel, built from a copy of the source (nothing is written into the tree)."""
    with tempfile.TemporaryDirectory(prefix="inspector-wheel-") as tmp:
        source = copy_source(pathlib.Path(tmp) / "src")
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                                 "--no-build-isolation", "-w", str(out), str(source)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BundleError(f"building the wheel failed: {result.stderr[-2000:]}")
    wheels = sorted(out.glob("inspector-*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"expected one inspector wheel in {out}, found {wheels}")
    return wheels[0]


def runtime_requirements(wheel: pathlib.Path) -> List[str]:
    """The wheel's own dependencies, without any extra: what the daemon needs, never the training stack."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode("utf-8").splitlines()
    requirements = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            requirement = line.split(":", 1)[1].strip()
            if "extra ==" not in requirement:
                requirements.append(requirement)
    return requirements


# The MindX SDK's SendProtobuf (the second stage's crops) needs protobuf 4.25.1 in the Python that runs the SDK
# (api_Python.md "SendProtobuf"); the release's venv puts its own packages before the system's, so an Ascend
# bundle pins the SDK's version. onnxruntime (a CPU runtime, which pulls a newer protobuf) is left out: the box
# runs the OM and the Ascend device never imports it.
SDK_PROTOBUF = "protobuf==4.25.1"


def box_requirements(requirements: List[str], device: str) -> List[str]:
    """What a bundle installs for the configured device: the wheel's runtime requirements, or for `ascend` those
    without onnxruntime and with the SDK's protobuf."""
    if device != "ascend":
        return list(requirements)
    return [r for r in requirements if not re.match(r"onnxruntime\b", r)] + [SDK_PROTOBUF]


def download_dependencies(requirements: List[str], target: Target, wheels: pathlib.Path,
                          find_links: Optional[str] = None) -> None:
    """Binary wheels of `requirements` and everything they need, for `target`, into `wheels`."""
    with tempfile.TemporaryDirectory(prefix="inspector-reqs-") as tmp:
        listing = pathlib.Path(tmp) / "requirements.txt"
        listing.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(wheels),
                   "-r", str(listing), *target.pip_arguments()]
        if find_links:
            command += ["--no-index", "--find-links", find_links]
        constraints = SOURCE_ROOT / "constraints.txt"
        if target.python == "3.11" and constraints.is_file():
            # The versions the tests ran with, where they apply; a package pinned here keeps its own pin.
            pinned = {re.split(r"[=<>!~ ]", r, 1)[0].lower() for r in requirements if "==" in r}
            kept = pathlib.Path(tmp) / "constraints.txt"
            kept.write_text("".join(line + "\n" for line in constraints.read_text(encoding="utf-8").splitlines()
                                    if re.split(r"[=<>!~ ]", line, 1)[0].lower() not in pinned), encoding="utf-8")
            command += ["-c", str(kept)]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BundleError(f"downloading the dependencies for Python {target.python} on {target.machine} "
                          f"(glibc {target.glibc}) failed: {result.stderr.strip()[-2000:]}")
    training = [p.name for p in wheels.glob("*.whl") if p.name.lower().startswith(("mindspore", "pycocotools",
                                                                                    "matplotlib", "torch"))]
    if training:
        raise BundleError(f"the runtime dependencies pulled in the training stack: {training}")


def lock_file(wheels: pathlib.Path) -> str:
    """name==version --hash=sha256:... of every dependency wheel (pip's hash-checking mode)."""
    lines = []
    for path in sorted(wheels.glob("*.whl")):
        match = WHEEL_NAME.match(path.name)
        if not match:
            raise BundleError(f"{path.name}: not a wheel file name")
        name = match["name"].lower().replace("_", "-")
        if name == "inspector":
            continue
        lines.append(f"{name}=={match['version']} --hash=sha256:{sha256_file(path)}")
    return "\n".join(lines) + "\n"


def packed_problems(config, config_path, stage: pathlib.Path) -> List[str]:
    """What `validate` on the box would refuse in what is packed: the config against the packed models, each model
    directory as its device runs it (the OM for `ascend`), and the graph. The box's environment variables and
    directories are the box's: install.sh validates those there."""
    packed = config.model_copy(update={"model": str(stage / "model")})
    if config.stage2 is not None:
        packed = packed.model_copy(update={"stage2": config.stage2.model_copy(update={"model": str(stage / "stage2")})})
    problems: List[str] = []
    spec, _ = load_specs(packed, str(config_path), problems)
    problems += model_file_problems(packed.model, spec, packed.device)
    if not problems:
        problems += validate_graph(render_graph(packed, spec), "the bundled graph", spec=spec, config=packed,
                                   device=packed.device)
    return [p.replace(str(stage) + "/", "") for p in problems]


def build_bundle(model_dir, config_path, out_dir, version: Optional[str] = None, *, platform_name: Optional[str] = None,
                 python: Optional[str] = None, glibc: Optional[str] = None,
                 find_links: Optional[str] = None) -> pathlib.Path:
    version = version or importlib.metadata.version("inspector")
    target = Target.parse(platform_name, python, glibc)
    model_dir = pathlib.Path(model_dir)
    spec = ModelSpec.load(model_dir)
    config = load_config(config_path)
    if not pathlib.Path(config.output.directory).is_absolute():
        raise BundleError(f"{config_path}: output.directory must be absolute on the box (e.g. /var/lib/inspector/out)")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"inspector-{version}"
    with tempfile.TemporaryDirectory() as tmp:
        stage = pathlib.Path(tmp) / name
        (stage / "config").mkdir(parents=True)
        shutil.copytree(model_dir, stage / "model")
        raw = yaml.safe_load(pathlib.Path(config_path).read_text(encoding="utf-8"))
        raw["model"] = "../model"
        installed = config.model_copy(update={"model": f"{INSTALL_ROOT}/model"})
        if config.stage2 is not None:  # the second model travels beside the first, found the same way
            try:
                ModelSpec.load(config.stage2.model)
            except ModelError as exc:
                raise BundleError(f"{config_path}: stage2.model: {exc}") from exc
            shutil.copytree(config.stage2.model, stage / "stage2")
            raw["stage2"]["model"] = "../stage2"
            installed = installed.model_copy(update={"stage2": config.stage2.model_copy(
                update={"model": f"{INSTALL_ROOT}/stage2"})})
        (stage / "config" / "daemon.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        problems = packed_problems(config, config_path, stage)
        if problems:
            raise BundleError(f"{config_path}: the bundle would not start on the box:\n  " + "\n  ".join(problems))
        # The site's cameras are rarely reachable from where a bundle is built: the daemon asks an `auto` camera
        # its codec on the box at every start; the bundled graph (a reference copy) assumes the default for it.
        auto = [camera.id for camera in config.cameras if camera.codec == "auto"]
        if auto:
            logger.warning("cameras %s: codec auto: the daemon asks them on the box at start; the bundled "
                           "config/pipeline.json assumes H264 for them (set codec: h264 or h265 to fix it)",
                           ", ".join(auto))
        (stage / "config" / "pipeline.json").write_text(graph_json(render_graph(installed, spec)), encoding="utf-8")
        wheel = build_wheel(stage / "wheels")
        download_dependencies(box_requirements(runtime_requirements(wheel), config.device), target, stage / "wheels",
                              find_links)
        (stage / "requirements.lock").write_text(lock_file(stage / "wheels"), encoding="utf-8")
        (stage / "systemd").mkdir()
        shutil.copy(FILES / "inspector.service", stage / "systemd" / "inspector.service")
        (stage / "bin").mkdir()
        shutil.copy(FILES / "inspector-env", stage / "bin" / "inspector-env")
        (stage / "bin" / "inspector-env").chmod(0o755)
        shutil.copy(FILES / "install.sh", stage / "install.sh")
        (stage / "install.sh").chmod(0o755)
        shutil.copy(FILES / "Dockerfile", stage / "Dockerfile")
        (stage / "k8s").mkdir()
        shutil.copy(FILES / "k8s" / "daemonset.yaml", stage / "k8s" / "daemonset.yaml")
        docs = SOURCE_ROOT / "docs" / "deploy.md"
        if docs.is_file():
            shutil.copy(docs, stage / "README.md")
        (stage / "VERSION").write_text(version + "\n", encoding="utf-8")
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        (stage / "bundle.json").write_text(json.dumps({
            "version": version, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "target": target.to_dict(),
            "model": {"architecture": spec.architecture, "input": [spec.input_height, spec.input_width],
                      "classes": list(spec.class_names), "format": spec.model_format},
            "files": files + ["bundle.json"]}, indent=2) + "\n", encoding="utf-8")
        sums = [f"{sha256_file(stage / f)}  {f}" for f in sorted(files + ["bundle.json"])]
        (stage / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
        archive = out_dir / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(stage, arcname=name)
    return archive
