"""`inspector doctor`: what this machine has, and which device the daemon would use.

Probes only: it imports nothing from the MindX SDK at module level, starts no stream, and reads versions from
files and `--version` output where the tools exist.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform
import shutil
import subprocess
from typing import Optional

PACKAGES = ("mindspore", "onnxruntime", "onnx", "numpy", "opencv-python-headless", "av", "pydantic", "pyyaml")
CANN_VERSION_FILES = ("{home}/ascend-toolkit/latest/version.cfg",
                      "{home}/ascend-toolkit/latest/arm64-linux/ascend_toolkit_install.info",
                      "{home}/ascend-toolkit/latest/x86_64-linux/ascend_toolkit_install.info")


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_line(path: pathlib.Path) -> Optional[str]:
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if "version" in line.lower():
                return line.strip()
    except OSError:
        return None
    return None


def mindx_sdk() -> dict:
    home = os.environ.get("MX_SDK_HOME")
    info: dict = {"MX_SDK_HOME": home, "importable": False}
    try:
        from pipeline.devices.ascend import import_sdk

        import_sdk()
        info["importable"] = True
    except Exception as exc:  # DeviceError: not installed or its libraries not on the path; anything else: broken
        cause = exc.__cause__ or exc
        info["error"] = f"{type(cause).__name__}: {cause}"  # the whole reason: which module or library is missing
    if home:
        info["version"] = _first_line(pathlib.Path(home) / "version.info")
        from pipeline.devices.ascend import sdk_owner_problem

        # The SDK refuses at InitManager a process whose user does not own libmxbase.so.
        info["run_user_problem"] = sdk_owner_problem(home)
    return info


def cann(ascend_home: str) -> dict:
    info: dict = {"home": ascend_home, "installed": False}
    for pattern in CANN_VERSION_FILES:
        path = pathlib.Path(pattern.format(home=ascend_home))
        if path.is_file():
            info.update(installed=True, version=_first_line(path), version_file=str(path))
            break
    atc = shutil.which("atc")
    info["atc"] = atc
    if atc:
        try:
            result = subprocess.run([atc, "--version"], capture_output=True, text=True, timeout=60)
            info["atc_version"] = (result.stdout or result.stderr).strip().splitlines()[-1:] or None
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["atc_version"] = f"not runnable: {exc}"
    return info


def npus(device_root: str = "/dev") -> dict:
    devices = sorted(p.name for p in pathlib.Path(device_root).glob("davinci[0-9]*"))
    info: dict = {"devices": devices, "npu_smi": shutil.which("npu-smi")}
    if info["npu_smi"]:
        try:
            result = subprocess.run([info["npu_smi"], "info"], capture_output=True, text=True, timeout=30)
            info["npu_smi_info"] = result.stdout.strip().splitlines()[:12]
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["npu_smi_info"] = f"not runnable: {exc}"
    return info


def report(ascend_home: str = "/usr/local/Ascend", device_root: str = "/dev") -> dict:
    sdk, toolkit, npu = mindx_sdk(), cann(ascend_home), npus(device_root)
    runtimes = [name for name, package in (("onnxruntime", "onnxruntime"), ("mindspore", "mindspore"))
                if _version(package)]
    ascend_ready = sdk["importable"] and bool(npu["devices"]) and not sdk.get("run_user_problem")
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "packages": {p: _version(p) for p in PACKAGES},
        "cpu_runtimes": runtimes,
        "mindx_sdk": sdk,
        "cann": toolkit,
        "npus": npu,
        "daemon_device": "ascend" if ascend_ready else "mock",
        "why": ("MindX SDK importable and NPUs visible" if ascend_ready else
                f"no MindX SDK ({sdk.get('error')})" if not sdk["importable"] else
                "no /dev/davinci* device" if not npu["devices"] else sdk["run_user_problem"]) +
               ("" if ascend_ready else ": the daemon runs the CPU mock device"),
    }
