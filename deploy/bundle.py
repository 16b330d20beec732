"""`inspector bundle`: one versioned archive that installs on an Atlas edge box with one command.

inspector-<version>.tar.gz holds, under inspector-<version>/:
  VERSION, bundle.json        version, creation time, model facts, file list
  model/                      the converted model directory (OM, AIPP, manifest, the ONNX as CPU fallback)
  config/daemon.yaml          the daemon config, `model: ../model` (secrets stay ${VAR} placeholders)
  config/pipeline.json        the MindX graph as it will run (informational; the daemon renders it)
  wheels/inspector-*.whl      this package, built from the source tree
  requirements.lock           the pinned dependency closure of the environment that built the bundle
  systemd/inspector.service   the unit; install.sh the installer; README.md (docs/deploy.md)
  Dockerfile, k8s/            the container alternative and a DaemonSet for many boxes
  SHA256SUMS                  every other file, verified by install.sh before anything is written
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

import yaml

from models.integrity import sha256_file
from models.errors import ModelError
from models.spec import ModelSpec
from pipeline.config import load_config
from pipeline.graph import graph_json, render_graph

FILES = pathlib.Path(__file__).resolve().parent / "files"
SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[1]
INSTALL_ROOT = "/opt/inspector/current"


class BundleError(ModelError):
    """The bundle cannot be built as asked."""


def pinned_requirements(distribution: str = "inspector") -> list[str]:
    """name==version for every installed distribution `distribution` needs (markers evaluated here)."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    pending = [distribution]
    while pending:
        name = pending.pop()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise BundleError(f"{name} is required but not installed in this environment") from exc
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            key = requirement.name.lower().replace("_", "-")
            if key not in seen:
                seen[key] = importlib.metadata.version(requirement.name)
                pending.append(requirement.name)
    return [f"{name}=={version}" for name, version in sorted(seen.items())]


def build_wheel(out: pathlib.Path) -> pathlib.Path:
    if not (SOURCE_ROOT / "setup.cfg").is_file():
        raise BundleError(f"{SOURCE_ROOT}: no setup.cfg; `inspector bundle` runs from the source tree")
    # setuptools copies sources into build/lib and never removes what is gone from the tree: start clean so a
    # deleted module cannot ride along in the wheel.
    shutil.rmtree(SOURCE_ROOT / "build", ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "-w", str(out), str(SOURCE_ROOT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BundleError(f"building the wheel failed: {result.stderr[-2000:]}")
    wheels = sorted(out.glob("inspector-*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"expected one inspector wheel in {out}, found {wheels}")
    return wheels[0]


def build_bundle(model_dir: str | pathlib.Path, config_path: str | pathlib.Path, out_dir: str | pathlib.Path,
                 version: str | None = None) -> pathlib.Path:
    version = version or importlib.metadata.version("inspector")
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
        (stage / "config" / "daemon.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        installed = config.model_copy(update={"model": f"{INSTALL_ROOT}/model"})
        (stage / "config" / "pipeline.json").write_text(graph_json(render_graph(installed, spec)), encoding="utf-8")
        build_wheel(stage / "wheels")
        (stage / "requirements.lock").write_text("\n".join(pinned_requirements()) + "\n", encoding="utf-8")
        (stage / "systemd").mkdir()
        shutil.copy(FILES / "inspector.service", stage / "systemd" / "inspector.service")
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
            "model": {"architecture": spec.architecture, "input": [spec.input_height, spec.input_width],
                      "classes": list(spec.class_names), "format": spec.model_format},
            "files": files + ["bundle.json"]}, indent=2) + "\n", encoding="utf-8")
        sums = [f"{sha256_file(stage / f)}  {f}" for f in sorted(files + ["bundle.json"])]
        (stage / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
        archive = out_dir / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(stage, arcname=name)
    return archive
