"""What `inspector validate` checks beyond the config's own shape, so that what passes it starts.

`validate` is the deploy gate (install.sh runs it before switching versions), and `run` runs the same checks
before it touches a camera: environment variables the config names, the output directory, the model files
(checksums, the CPU model loads with the manifest's input size), and file cameras (present, with a video
stream). Each problem is one line naming the key or the file; no secret value is ever quoted.
"""

from __future__ import annotations

import os
import pathlib
import shutil

from models.integrity import check_checksums, check_cpu_model, manifest_problems
from models.spec import ModelSpec
from pipeline.config import PLACEHOLDER, DaemonConfig
from pipeline.outputs.sinks import mqtt_config_problems


def preflight(config: DaemonConfig, spec: ModelSpec, source: str = "config") -> list[str]:
    return (_environment(config, source) + _directories(config, source) + _model(config, spec)
            + _file_cameras(config, source))


def _missing(names, where: str) -> list[str]:
    return [f"{where}: environment variable {name} is not set" for name in names
            if name is not None and not os.environ.get(name)]


def _environment(config: DaemonConfig, source: str) -> list[str]:
    problems = []
    for index, camera in enumerate(config.cameras):
        problems += _missing(PLACEHOLDER.findall(camera.url), f"{source}: cameras[{index}] ({camera.id}).url")
    mqtt = config.output.mqtt
    if mqtt is not None:
        where = f"{source}: output.mqtt"
        problems += _missing([mqtt.username_env], f"{where}.username_env")
        problems += _missing([mqtt.password_env], f"{where}.password_env")
        problems += _missing(PLACEHOLDER.findall(mqtt.topic_prefix), f"{where}.topic_prefix")
        problems += _missing(PLACEHOLDER.findall(mqtt.client_id or ""), f"{where}.client_id")
        problems += mqtt_config_problems(mqtt, where)
    if config.output.webhook is not None:
        problems += _missing([config.output.webhook.token_env], f"{source}: output.webhook.token_env")
    if config.http.enabled:
        problems += _missing([config.http.token_env], f"{source}: http.token_env")
    return problems


MIN_FREE_BYTES = 16 * 1024 * 1024  # the outbox, status.json and a few snapshots: below this nothing is stored


def writable_directory_problem(directory: str | pathlib.Path) -> str | None:
    """Why the daemon could not create or write `directory` (or could, on a disk that is full), or None."""
    path = pathlib.Path(directory)
    if path.exists():
        if not path.is_dir():
            return f"{path} exists and is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable by this user"
        return _free_space_problem(path, path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {parent} is not writable by this user"
    return _free_space_problem(path, parent)


def _free_space_problem(path: pathlib.Path, existing: pathlib.Path) -> str | None:
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return (f"{path}: only {free / 2**20:.1f} MB free on its file system (at least "
                f"{MIN_FREE_BYTES // 2**20} MB needed): free some space")
    return None


def _directories(config: DaemonConfig, source: str) -> list[str]:
    problems = []
    for key, directory in (("output.directory", config.output.directory),
                           ("snapshots.directory", config.snapshots.directory if config.snapshots.enabled else None)):
        problem = directory and writable_directory_problem(directory)
        if problem:
            problems.append(f"{source}: {key}: {problem}")
    return problems


def _model(config: DaemonConfig, spec: ModelSpec) -> list[str]:
    return model_file_problems(config.model, spec, config.device)


def model_file_problems(directory: str, spec: ModelSpec, device: str | None) -> list[str]:
    """The one check of a model directory (validate, run, bench and bundle): its checksums, its manifest against
    itself (classes vs the scores' columns), then what the device runs, if all that holds: for the mock, the CPU
    model loads with the manifest's input and outputs; for the Ascend device, the OM is there. device None:
    the files only."""
    problems = check_checksums(directory) + manifest_problems(directory, spec)
    if problems:
        return problems
    if device == "mock":
        problems += check_cpu_model(directory, spec)
    elif device == "ascend" and not (pathlib.Path(directory) / "model.om").is_file():
        problems.append(f"{pathlib.Path(directory) / 'model.om'}: missing: the Ascend device runs the OM; convert "
                        f"the export with `inspector convert` (where atc is) and use the converted directory")
    return problems


def _file_cameras(config: DaemonConfig, source: str) -> list[str]:
    problems = []
    for index, camera in enumerate(config.cameras):
        if camera.is_rtsp:
            continue
        where = f"{source}: cameras[{index}] ({camera.id}).url"
        path = pathlib.Path(camera.url)
        if not path.is_file():
            problems.append(f"{where}: {path} is not a file")
            continue
        problem = video_stream_problem(path)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def video_stream_problem(path: pathlib.Path) -> str | None:
    """Why PyAV cannot read a video stream from the file, or None."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"{path} has no video stream"
    except (av.error.FFmpegError, OSError) as exc:
        return f"{path} is not a readable video ({exc})"
    return None
