"""The MindX SDK stream graph (`pipeline.json`): rendered from the daemon config, validated before it runs.

Per camera i: `mxpi_rtspsrc{i}` (or `filesrc{i}` for a local file) -> `queue{i}` -> `mxpi_videodecoder{i}`
-> optional `mxpi_skipframe{i}` -> `mxpi_parallel2serial0:{i}`; then one `mxpi_imageresize0` (letterbox to the
model input) -> `mxpi_tensorinfer0` -> `mxpi_dataserialize0` -> `appsink0`.

`modelPath` names the OM (`<model dir>/model.om`) so the same file runs on an Atlas box; the CPU mock device
reads the manifest beside it and runs the exported ONNX/MINDIR instead. RTSP URLs keep their `${VAR}`
placeholders: the device expands them when it opens the stream, so the file never holds a secret.
"""

from __future__ import annotations

import json
import pathlib
import re

from models.spec import ModelSpec
from pipeline.config import ConfigError, DaemonConfig, inline_password

STREAM_NAME = "inspector"
SOURCE_FACTORIES = ("mxpi_rtspsrc", "filesrc")
KNOWN_FACTORIES = {
    "mxpi_rtspsrc", "filesrc", "queue", "mxpi_videodecoder", "mxpi_skipframe", "mxpi_parallel2serial",
    "mxpi_imageresize", "mxpi_tensorinfer", "mxpi_dataserialize", "appsink",
    # Known MindX plugins the mock does not emulate (the graph is valid MindX, but refused by the mock).
    "mxpi_modelinfer", "mxpi_objectpostprocessor", "mxpi_selectobject", "mxpi_motsimplesortV2", "tee",
    "mxpi_object2osdinstances", "mxpi_opencvosd", "mxpi_videoencoder", "mxpi_imagedecoder", "appsrc",
    "mxpi_distributor", "mxpi_imagecrop", "mxpi_classpostprocessor", "fakesink", "mxpi_channelselector",
    "mxpi_synchronize", "mxpi_passengerflowestimation",
}
MOCK_FACTORIES = {"mxpi_rtspsrc", "filesrc", "queue", "mxpi_videodecoder", "mxpi_skipframe",
                  "mxpi_parallel2serial", "mxpi_imageresize", "mxpi_tensorinfer", "mxpi_dataserialize", "appsink"}
LETTERBOX = "Resizer_KeepAspectRatio_Fit"


def model_path_for(config: DaemonConfig) -> str:
    return str(pathlib.Path(config.model) / "model.om")


def render_graph(config: DaemonConfig, spec: ModelSpec) -> dict:
    device = str(config.device_id)
    elements: dict[str, dict] = {"stream_config": {"deviceId": device}}
    for index, camera in enumerate(config.cameras):
        src, queue, decoder = f"{'mxpi_rtspsrc' if camera.is_rtsp else 'filesrc'}{index}", f"queue{index}", \
            f"mxpi_videodecoder{index}"
        if camera.is_rtsp:
            elements[src] = {"factory": "mxpi_rtspsrc", "props": {"rtspUrl": camera.url, "channelId": str(index)},
                             "next": queue}
        else:
            elements[src] = {"factory": "filesrc", "props": {"location": camera.url}, "next": queue}
        elements[queue] = {"factory": "queue", "props": {"max-size-buffers": "50"}, "next": decoder}
        merge = f"mxpi_parallel2serial0:{index}"
        elements[decoder] = {"factory": "mxpi_videodecoder",
                             "props": {"inputVideoFormat": "H264", "outputImageFormat": "YUV420SP_NV12",
                                       "vdecChannelId": str(index), "deviceId": device},
                             "next": merge}
        if camera.frame_skip:
            skip = f"mxpi_skipframe{index}"
            elements[decoder]["next"] = skip
            elements[skip] = {"factory": "mxpi_skipframe", "props": {"frameNum": str(camera.frame_skip)},
                              "next": merge}
    elements["mxpi_parallel2serial0"] = {"factory": "mxpi_parallel2serial",
                                         "props": {"dataSource": ",".join(
                                             _last_before_merge(elements, i) for i in range(len(config.cameras)))},
                                         "next": "mxpi_imageresize0"}
    elements["mxpi_imageresize0"] = {"factory": "mxpi_imageresize",
                                     "props": {"resizeHeight": str(spec.input_height),
                                               "resizeWidth": str(spec.input_width), "resizeType": LETTERBOX,
                                               "deviceId": device},
                                     "next": "mxpi_tensorinfer0"}
    elements["mxpi_tensorinfer0"] = {"factory": "mxpi_tensorinfer",
                                     "props": {"dataSource": "mxpi_imageresize0", "modelPath": model_path_for(config),
                                               "waitingTime": str(config.batching.waiting_time_ms),
                                               "dynamicStrategy": config.batching.dynamic_strategy,
                                               "outputDeviceId": "-1", "deviceId": device},
                                     "next": "mxpi_dataserialize0"}
    elements["mxpi_dataserialize0"] = {"factory": "mxpi_dataserialize",
                                       "props": {"outputDataKeys": "mxpi_tensorinfer0"}, "next": "appsink0"}
    elements["appsink0"] = {"factory": "appsink"}
    return {STREAM_NAME: elements}


def _last_before_merge(elements: dict, index: int) -> str:
    return f"mxpi_skipframe{index}" if f"mxpi_skipframe{index}" in elements else f"mxpi_videodecoder{index}"


def graph_json(graph: dict) -> str:
    return json.dumps(graph, indent=4) + "\n"


def _targets(next_value) -> list[str]:
    if next_value is None:
        return []
    values = next_value if isinstance(next_value, list) else [next_value]
    return [str(v) for v in values]


def validate_graph(graph: object, source: str = "pipeline.json", spec: ModelSpec | None = None,
                   config: DaemonConfig | None = None, for_mock: bool = False) -> list[str]:
    """Every problem found, one message each (empty: valid). With `spec`/`config`, also cross-checks the
    resize size against the model and the camera count against the config; `for_mock` refuses plugins the
    CPU mock cannot emulate."""
    problems: list[str] = []
    if not isinstance(graph, dict) or not graph:
        return [f"{source}: expected a JSON object of streams"]
    for stream_name, stream in graph.items():
        where = f"{source}: stream {stream_name!r}"
        if not isinstance(stream, dict):
            problems.append(f"{where}: expected an object of elements")
            continue
        elements = {k: v for k, v in stream.items() if k != "stream_config"}
        for name, element in elements.items():
            if not isinstance(element, dict) or "factory" not in element:
                problems.append(f"{where}: element {name!r} has no 'factory'")
                continue
            factory = element["factory"]
            extra = set(element) - {"factory", "props", "next"}
            if extra:
                problems.append(f"{where}: element {name!r}: unknown keys {sorted(extra)}")
            if factory not in KNOWN_FACTORIES:
                problems.append(f"{where}: element {name!r}: unknown factory {factory!r}")
            elif for_mock and factory not in MOCK_FACTORIES:
                problems.append(f"{where}: element {name!r}: factory {factory!r} is not emulated by the mock "
                                f"device (emulated: {', '.join(sorted(MOCK_FACTORIES))})")
            props = element.get("props", {})
            if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
                problems.append(f"{where}: element {name!r}: props must be an object of string values")
                props = {}
            for target in _targets(element.get("next")):
                base = target.split(":", 1)[0]
                if base not in elements:
                    problems.append(f"{where}: element {name!r}: next {target!r} names no element")
                elif ":" in target and not re.fullmatch(r"\d+", target.split(":", 1)[1]):
                    problems.append(f"{where}: element {name!r}: next {target!r} has a bad port")
            for key in ("dataSource",):
                if key in props:
                    for ref in props[key].split(","):
                        if ref.strip() and ref.strip() not in elements:
                            problems.append(f"{where}: element {name!r}: {key} {ref.strip()!r} names no element")
            if factory == "mxpi_imageresize" and spec is not None:
                size = (props.get("resizeHeight"), props.get("resizeWidth"))
                if size != (str(spec.input_height), str(spec.input_width)):
                    problems.append(f"{where}: element {name!r}: resize {size[0]}x{size[1]} differs from the "
                                    f"model input {spec.input_height}x{spec.input_width} (manifest.json)")
            if factory == "mxpi_tensorinfer" and "modelPath" not in props:
                problems.append(f"{where}: element {name!r}: no modelPath")
            if factory == "mxpi_rtspsrc" and "rtspUrl" not in props:
                problems.append(f"{where}: element {name!r}: no rtspUrl")
            elif factory == "mxpi_rtspsrc" and inline_password(props["rtspUrl"]):
                # Never echoed: the graph is copied into the output directory and read by whoever can.
                problems.append(f"{where}: element {name!r}: rtspUrl holds a password: put it in the environment "
                                f"and write ${{VAR}} instead")
        sources = [n for n, e in elements.items() if isinstance(e, dict) and e.get("factory") in SOURCE_FACTORIES]
        if not sources:
            problems.append(f"{where}: no source element ({' or '.join(SOURCE_FACTORIES)})")
        if config is not None and len(sources) != len(config.cameras):
            problems.append(f"{where}: {len(sources)} camera sources, the config has {len(config.cameras)} cameras")
        problems += _check_reachability(elements, where)
    return problems


def _check_reachability(elements: dict, where: str) -> list[str]:
    incoming = {name: 0 for name in elements}
    for element in elements.values():
        if isinstance(element, dict):
            for target in _targets(element.get("next")):
                base = target.split(":", 1)[0]
                if base in incoming:
                    incoming[base] += 1
    problems = []
    for name, count in incoming.items():
        element = elements[name]
        if isinstance(element, dict) and count == 0 and element.get("factory") not in SOURCE_FACTORIES:
            problems.append(f"{where}: element {name!r} is never reached (no element's next names it)")
    return problems


def load_graph(path: str | pathlib.Path) -> dict:
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc


def check_config_against_model(config: DaemonConfig, spec: ModelSpec, source: str = "config") -> list[str]:
    problems = []
    if config.batching.max_batch not in spec.batch_gears:
        problems.append(f"{source}: batching.max_batch: {config.batching.max_batch} is not one of the model's "
                        f"dynamic-batch gears {list(spec.batch_gears)}")
    for camera in config.cameras:
        for zone in camera.zones:
            for name in zone.classes or []:
                if name not in spec.class_names:
                    problems.append(f"{source}: cameras.{camera.id}.zones.{zone.name}.classes: {name!r} is not a "
                                    f"class of the model ({', '.join(spec.class_names)})")
    for name in config.thresholds.per_class:
        if name not in spec.class_names:
            problems.append(f"{source}: thresholds.per_class.{name}: not a class of the model "
                            f"({', '.join(spec.class_names)})")
    return problems
