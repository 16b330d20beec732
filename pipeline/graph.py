"""The MindX SDK stream graph (`pipeline.json`): rendered from the daemon config, read once (`read_graph`) for the run
plan both devices start from and for `inspector validate`, and checked against what the SDK accepts (pipeline/sdk.py).

Rendered, per camera i: `mxpi_rtspsrc{i}` (or, on the mock device only, `filesrc{i}` for a local file) ->
`mxpi_videodecoder{i}` -> `queue{i}` -> optional `mxpi_skipframe{i}` -> `mxpi_parallel2serial0:{i}`; then one
`mxpi_imageresize0` (letterbox to the model input) -> `mxpi_tensorinfer0` -> `appsink0`. Facts of the SDK the
shape follows (Ascend/VisionSDK source):
- mxpi_parallel2serial's `dataSource` names, per input port, the element whose metadata it re-publishes under
  its own name (MxpiParallel2Serial.cpp SpecialUse: a key with no metadata forwards the buffer untouched):
  the decoders, since mxpi_skipframe adds none; the resize reads `mxpi_parallel2serial0` explicitly.
- the queue sits after the decoder and drops the oldest decoded frame when full (`leaky: 2`, plugins.md
  "queue") for a live camera, as the mock's live queue does: dropping H.264 packets before the decoder would
  corrupt pictures, and a decoder held back by a full queue cannot recover (plugins.md "mxpi_videodecoder").
- each decoder's `inputVideoFormat` is its camera's codec (`codec` in the config, `auto` resolved by asking the
  camera: pipeline/codecs.py), since on the releases of 310 boxes the property, not the stream, sets the VDEC up.
- tensorinfer's results go straight to the appsink; the host asks for them by key with GetResult.
With a second stage (docs/cascade.md) a second stream, `inspector_stage2`: `appsrc1` ->
`mxpi_tensorinfer1` (the second model's OM) -> `appsink1`. The host sends it the crops it cut from the decoded
frame, as tensors (SendProtobuf), and reads the results back with GetResult: stage 1's objects come out of the
first stream as tensors decoded on the host, so no element of the first stream holds boxes an `mxpi_imagecrop`
could read.
`modelPath` names the OM (`<model dir>/model.om`) so the same file runs on an Atlas box; the CPU mock device
reads the manifest beside it and runs the exported ONNX/MINDIR instead. RTSP URLs keep their `${VAR}`
placeholders: the device expands them when it opens the stream, so the file never holds a secret.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Dict, List, Optional, Tuple

from models.spec import ModelSpec
from core.configfile import read_json
from pipeline.codecs import DEFAULT_FORMAT, describe, video_format
from pipeline.config import DaemonConfig, inline_password
from pipeline.postprocess import unknown_threshold_classes
from pipeline.sdk import DOCUMENTED, ELEMENT_KEYS, check_properties

STREAM_NAME = "inspector"
STAGE2_STREAM = "inspector_stage2"
STAGE2_SOURCE, STAGE2_INFER, STAGE2_SINK = "appsrc1", "mxpi_tensorinfer1", "appsink1"
SOURCE_FACTORIES = ("mxpi_rtspsrc", "filesrc", "appsrc")
MOCK_FACTORIES = {"mxpi_rtspsrc", "filesrc", "queue", "mxpi_videodecoder", "mxpi_skipframe",
                  "mxpi_parallel2serial", "mxpi_imageresize", "mxpi_tensorinfer", "mxpi_dataserialize", "appsink"}
LETTERBOX = "Resizer_KeepAspectRatio_Fit"
PORT = re.compile(r"^(?P<name>[^:]+)(?::(?P<port>\d+))?$")


def model_path_for(config: DaemonConfig) -> str:
    return str(pathlib.Path(config.model) / "model.om")


def render_graph(config: DaemonConfig, spec: ModelSpec) -> dict:
    device = str(config.device_id)
    elements: Dict[str, dict] = {"stream_config": {"deviceId": device}}
    decoders = []
    for index, camera in enumerate(config.cameras):
        src, decoder, queue = f"{'mxpi_rtspsrc' if camera.is_rtsp else 'filesrc'}{index}", \
            f"mxpi_videodecoder{index}", f"queue{index}"
        if camera.is_rtsp:
            elements[src] = {"factory": "mxpi_rtspsrc", "props": {"rtspUrl": camera.url, "channelId": str(index)},
                             "next": decoder}
        else:
            elements[src] = {"factory": "filesrc", "props": {"location": camera.url}, "next": decoder}
        elements[decoder] = {"factory": "mxpi_videodecoder",
                             "props": {"inputVideoFormat": video_format(camera.codec),
                                       "outputImageFormat": "YUV420SP_NV12",
                                       "vdecChannelId": str(index), "deviceId": device},
                             "next": queue}
        live = camera.effective_mode == "live"
        elements[queue] = {"factory": "queue",
                           "props": {"max-size-buffers": str(config.effective_live_queue if live else 8),
                                     "leaky": "2" if live else "0"}}
        merge = f"mxpi_parallel2serial0:{index}"
        if camera.frame_skip:
            skip = f"mxpi_skipframe{index}"
            elements[queue]["next"] = skip
            elements[skip] = {"factory": "mxpi_skipframe", "props": {"frameNum": str(camera.frame_skip)},
                              "next": merge}
        else:
            elements[queue]["next"] = merge
        decoders.append(decoder)
    elements["mxpi_parallel2serial0"] = {"factory": "mxpi_parallel2serial", "props": {"dataSource": ",".join(decoders)},
                                         "next": "mxpi_imageresize0"}
    elements["mxpi_imageresize0"] = {"factory": "mxpi_imageresize",
                                     "props": {"dataSource": "mxpi_parallel2serial0",
                                               "resizeHeight": str(spec.input_height),
                                               "resizeWidth": str(spec.input_width), "resizeType": LETTERBOX,
                                               # The padding's colour: DVPP's zeros would be dark green after
                                               # AIPP; this is the letterbox training used (black by default).
                                               "RGBValue": padding_rgb(spec), "deviceId": device},
                                     "next": "mxpi_tensorinfer0"}
    elements["mxpi_tensorinfer0"] = {"factory": "mxpi_tensorinfer",
                                     "props": {"dataSource": "mxpi_imageresize0", "modelPath": model_path_for(config),
                                               "waitingTime": str(config.batching.waiting_time_ms),
                                               "dynamicStrategy": config.batching.dynamic_strategy,
                                               "outputDeviceId": "-1", "deviceId": device},
                                     "next": "appsink0"}
    elements["appsink0"] = {"factory": "appsink"}
    graph = {STREAM_NAME: elements}
    if config.stage2 is not None:
        graph[STAGE2_STREAM] = render_stage2(config)
    return graph


def render_stage2(config: DaemonConfig) -> dict:
    """The second stage's stream: crops in from the host, the second model, results out. `Upper`: a partial batch
    of crops runs in the smallest gear that holds it all (no crop waits for a later frame's)."""
    device = str(config.device_id)
    return {"stream_config": {"deviceId": device},
            STAGE2_SOURCE: {"factory": "appsrc", "next": STAGE2_INFER},
            STAGE2_INFER: {"factory": "mxpi_tensorinfer",
                           "props": {"dataSource": STAGE2_SOURCE,
                                     "modelPath": str(pathlib.Path(config.stage2.model) / "model.om"),
                                     "waitingTime": str(config.batching.waiting_time_ms), "dynamicStrategy": "Upper",
                                     "outputDeviceId": "-1", "deviceId": device},
                           "next": STAGE2_SINK},
            STAGE2_SINK: {"factory": "appsink"}}


def padding_rgb(spec: ModelSpec) -> str:
    value = spec.letterbox.pad_value
    return f"{value},{value},{value}"


def graph_json(graph: dict) -> str:
    return json.dumps(graph, indent=4) + "\n"


# --- the one reading of a graph ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CameraChain:
    """One camera's elements, from its source to the merge (or the model), as the graph names them."""

    source: str
    factory: str
    url: Optional[str]  # rtspUrl or location; None for appsrc
    decoder: Optional[str]
    queue: Optional[str]
    skip: Optional[str]
    frame_skip: int
    queue_props: Dict[str, str]
    decoder_props: Dict[str, str]


@dataclasses.dataclass(frozen=True)
class Stage2Reading:
    """The second stage's stream: where the host sends crops, the model, where it reads results."""

    stream: str
    elements: Dict[str, dict]
    source: Optional[str]
    infer: Optional[str]
    sink: Optional[str]

    @property
    def model_path(self) -> Optional[str]:
        return self.elements.get(self.infer, {}).get("props", {}).get("modelPath") if self.infer else None


@dataclasses.dataclass(frozen=True)
class GraphReading:
    """What a device needs from a graph: its stream, the cameras in merge-port order, the resize, the model
    and the output element, read once (`read_graph`) into the run plan (pipeline/runplan.py) and for `validate`."""

    stream: str
    device_id: str
    elements: Dict[str, dict]
    cameras: Tuple[CameraChain, ...]
    resize: Optional[str]
    infer: Optional[str]
    sink: Optional[str]
    sink_index: int  # the appsink's number among the stream's appsinks (GetProtobuf's outPluginId)
    stage2: Optional[Stage2Reading] = None  # the second stage's stream, when the graph has one

    def props(self, name: Optional[str]) -> Dict[str, str]:
        return dict(self.elements.get(name, {}).get("props", {})) if name else {}

    @property
    def model_path(self) -> Optional[str]:
        return self.props(self.infer).get("modelPath")

    @property
    def decoded_picture_key(self) -> Optional[str]:
        """The element the resize reads the decoded picture from: the key the Ascend device asks for that
        picture by. None where it reads `auto` (visionsdk/plugins.md: dataSource defaults to auto), which names
        no key; an empty value is read the same."""
        source = self.props(self.resize).get("dataSource")
        return source if source and source != "auto" else None


def _targets(next_value) -> List[str]:
    if next_value is None:
        return []
    values = next_value if isinstance(next_value, list) else [next_value]
    return [str(v) for v in values]


def _base(target: str) -> str:
    return target.split(":", 1)[0]


def _stream_elements(stream: object, where: str) -> Tuple[Optional[Dict[str, dict]], List[str]]:
    """A stream's elements (without stream_config) and what is malformed in them."""
    if not isinstance(stream, dict):
        return None, [f"{where}: expected an object of elements"]
    elements = {k: v for k, v in stream.items() if k != "stream_config"}
    problems = []
    for name, element in elements.items():
        if not isinstance(element, dict) or not isinstance(element.get("factory"), str):
            problems.append(f"{where}: element {name!r} has no 'factory'")
        elif not isinstance(element.get("props", {}), dict) or \
                not all(isinstance(v, str) for v in element.get("props", {}).values()):
            problems.append(f"{where}: element {name!r}: props must be an object of string values")
        else:
            for key in ("next", "nextMeta"):
                value = element.get(key)
                if value is not None and not (isinstance(value, str) or
                                              (isinstance(value, list) and all(isinstance(v, str) for v in value))):
                    problems.append(f"{where}: element {name!r}: {key} must be a name or a list of names")
    return (None if problems else elements), problems


def read_graph(graph: object, source: str = "pipeline.json") -> Tuple[Optional[GraphReading], List[str]]:
    """The reading of a graph (the camera stream, and the second stage's stream when there is one), and every
    structural problem found (never an exception)."""
    if not isinstance(graph, dict) or not graph:
        return None, [f"{source}: expected a JSON object of streams"]
    streams = dict(graph)
    stage2_stream = streams.pop(STAGE2_STREAM, None)
    if len(streams) != 1:
        return None, [f"{source}: the daemon runs one camera stream (and, with a second stage, "
                      f"{STAGE2_STREAM!r}); the graph has {len(graph)} ({', '.join(map(str, graph))})"]
    stream_name, stream = next(iter(streams.items()))
    where = f"{source}: stream {stream_name!r}"
    elements, problems = _stream_elements(stream, where)
    if elements is None:
        return None, problems
    config = stream.get("stream_config", {})
    device_id = str(config.get("deviceId", "0")) if isinstance(config, dict) else "0"
    stage2 = None
    if stage2_stream is not None:
        stage2, stage2_problems = _read_stage2(stage2_stream, f"{source}: stream {STAGE2_STREAM!r}")
        if stage2 is None:
            return None, stage2_problems
        problems += stage2_problems
    factory = {name: element["factory"] for name, element in elements.items()}
    sources = [n for n, f in factory.items() if f in SOURCE_FACTORIES]
    cameras = []
    for name in sources:
        chain = _follow_camera(elements, name)
        if isinstance(chain, str):
            problems.append(f"{where}: {chain}")
        else:
            cameras.append(chain)
    infer = [n for n, f in factory.items() if f == "mxpi_tensorinfer"]
    resize = [n for n, f in factory.items() if f == "mxpi_imageresize"]
    sinks = [n for n, f in factory.items() if f == "appsink"]
    sink = next((s for s in sinks if infer and _reaches(elements, infer[0], s)), sinks[0] if sinks else None)
    reading = GraphReading(str(stream_name), device_id, elements, tuple(_in_merge_order(elements, cameras)),
                     resize[0] if len(resize) == 1 else None, infer[0] if len(infer) == 1 else None, sink,
                     sinks.index(sink) if sink else 0, stage2)
    return reading, problems


def _read_stage2(stream: object, where: str) -> Tuple[Optional[Stage2Reading], List[str]]:
    """The second stage's stream must be exactly appsrc -> mxpi_tensorinfer -> appsink: the host feeds it crops
    and reads its results, nothing else in it would be read."""
    elements, problems = _stream_elements(stream, where)
    if elements is None:
        return None, problems
    by_factory: Dict[str, List[str]] = {}
    for name, element in elements.items():
        by_factory.setdefault(element["factory"], []).append(name)
    expected = ("appsrc", "mxpi_tensorinfer", "appsink")
    found = {kind: by_factory.get(kind, []) for kind in expected}
    others = sorted(set(by_factory) - set(expected))
    if others or any(len(names) != 1 for names in found.values()):
        problems.append(f"{where}: expected exactly one appsrc -> mxpi_tensorinfer -> appsink, found "
                        f"{', '.join(f'{k}: {len(v)}' for k, v in by_factory.items()) or 'no element'}")
        return Stage2Reading(STAGE2_STREAM, elements, None, None, None), problems
    source, infer, sink = (found[kind][0] for kind in expected)
    if _targets(elements[source].get("next")) != [infer] or _targets(elements[infer].get("next")) != [sink]:
        problems.append(f"{where}: the elements must flow {source} -> {infer} -> {sink}")
    if elements[infer].get("props", {}).get("dataSource", source) != source:
        problems.append(f"{where}: element {infer!r}: dataSource must be {source!r} (the crops the host sends)")
    return Stage2Reading(STAGE2_STREAM, elements, source, infer, sink), problems


def _follow_camera(elements: dict, source: str):
    """The chain from a source along `next` until the merge or the resize; a string explains what is wrong."""
    chain = {"source": source, "decoder": None, "queue": None, "skip": None}
    name, seen = source, set()
    while True:
        if name in seen:
            return f"element {name!r}: the camera chain of {source!r} loops back on itself"
        seen.add(name)
        targets = _targets(elements[name].get("next"))
        if len(targets) != 1:
            if not targets:
                break
            return f"element {name!r}: a camera chain cannot branch (next {targets})"
        following = _base(targets[0])
        if following not in elements:
            break  # reported by the reference check
        kind = elements[following]["factory"]
        if kind == "mxpi_videodecoder" and chain["decoder"] is None:
            chain["decoder"] = following
        elif kind == "queue" and chain["queue"] is None:
            chain["queue"] = following
        elif kind == "mxpi_skipframe" and chain["skip"] is None:
            chain["skip"] = following
        else:
            break
        name = following
    props = dict(elements[source].get("props", {}))
    url = props.get("rtspUrl") if elements[source]["factory"] == "mxpi_rtspsrc" else props.get("location")
    skip_props = elements[chain["skip"]].get("props", {}) if chain["skip"] else {}
    try:
        frame_skip = int(skip_props.get("frameNum", "0"))
    except ValueError:
        frame_skip = 0  # reported by the property check
    return CameraChain(source, elements[source]["factory"], url, chain["decoder"], chain["queue"], chain["skip"],
                       frame_skip, dict(elements[chain["queue"]].get("props", {})) if chain["queue"] else {},
                       dict(elements[chain["decoder"]].get("props", {})) if chain["decoder"] else {})


def _last_of(chain: CameraChain) -> str:
    return chain.skip or chain.queue or chain.decoder or chain.source


def _in_merge_order(elements: dict, cameras: List[CameraChain]) -> List[CameraChain]:
    """Cameras ordered by the merge port their chain ends at (`mxpi_parallel2serial0:<i>`), else as written."""
    def port(chain: CameraChain) -> int:
        targets = _targets(elements[_last_of(chain)].get("next"))
        match = PORT.match(targets[0]) if targets else None
        return int(match["port"]) if match and match["port"] else 0
    return sorted(cameras, key=port)


def _reaches(elements: dict, start: str, goal: str) -> bool:
    pending, seen = [start], set()
    while pending:
        name = pending.pop()
        if name == goal:
            return True
        if name in seen or name not in elements:
            continue
        seen.add(name)
        pending += [_base(t) for t in _targets(elements[name].get("next"))]
    return False


# --- validation -------------------------------------------------------------------------------------------------
def validate_graph(graph: object, source: str = "pipeline.json", spec: Optional[ModelSpec] = None,
                   config: Optional[DaemonConfig] = None, for_mock: bool = False,
                   device: Optional[str] = None) -> List[str]:
    """Every problem found, one message each (empty: valid). With `spec`/`config`, also cross-checks the graph
    against the model and the config; `for_mock` refuses plugins the CPU mock cannot emulate, `device="ascend"`
    what the Ascend device refuses at start (a file source, not exactly one tensorinfer)."""
    reading, problems = read_graph(graph, source)
    if reading is None:
        return problems
    return problems + reading_problems(reading, source, spec, config, for_mock, device)


def reading_problems(reading: GraphReading, source: str = "pipeline.json", spec: Optional[ModelSpec] = None,
                  config: Optional[DaemonConfig] = None, for_mock: bool = False,
                  device: Optional[str] = None) -> List[str]:
    """`validate_graph` of a graph already read (`read_graph`): the problems beyond its structure."""
    problems: List[str] = []
    where = f"{source}: stream {reading.stream!r}"
    elements = reading.elements
    for name, element in elements.items():
        kind = element["factory"]
        if for_mock and kind not in MOCK_FACTORIES:
            problems.append(f"{where}: element {name!r}: factory {kind!r} is not emulated by the mock device "
                            f"(emulated: {', '.join(sorted(MOCK_FACTORIES))})")
        props = element.get("props", {})
        problems += [f"{where}: {p}" for p in check_properties(name, kind, props)]
        for key in ("next", "nextMeta"):
            for target in _targets(element.get(key)):
                match = PORT.match(target)
                if not match:
                    problems.append(f"{where}: element {name!r}: {key} {target!r} has a bad port")
                elif match["name"] not in elements:
                    problems.append(f"{where}: element {name!r}: {key} {target!r} names no element")
        for ref in (props.get("dataSource") or "").split(","):
            ref = ref.strip()
            if ref and ref != "auto" and not _names_output(elements, ref) and not _custom_publishers(elements):
                # With a plugin the SDK does not document, the key may be one it publishes (its outputKeys):
                # graph_warnings says so instead.
                problems.append(f"{where}: element {name!r}: dataSource {ref!r} names no element")
        if kind == "mxpi_rtspsrc" and "rtspUrl" in props and inline_password(props["rtspUrl"]):
            # Never echoed: the graph is copied into the output directory and read by whoever can.
            problems.append(f"{where}: element {name!r}: rtspUrl holds a password: put it in the environment "
                            f"and write ${{VAR}} instead")
    problems += _check_flow(reading, where)
    if reading.stage2 is not None:
        # Not run by the mock's graph emulation: the mock runs the second model from the config (DeviceSettings).
        problems += [f"{source}: stream {reading.stage2.stream!r}: {p}" for name, element in reading.stage2.elements.items()
                     for p in check_properties(name, element["factory"], element.get("props", {}))]
    if spec is not None and reading.resize:
        props = reading.props(reading.resize)
        size = (props.get("resizeHeight"), props.get("resizeWidth"))
        if size != (str(spec.input_height), str(spec.input_width)):
            problems.append(f"{where}: element {reading.resize!r}: resize {size[0]}x{size[1]} differs from the "
                            f"model input {spec.input_height}x{spec.input_width} (manifest.json)")
    if config is not None:
        problems += _check_against_config(reading, config, where)
    if device == "ascend":
        problems += ascend_problems(reading, where, spec)
    return problems


def _custom_publishers(elements: dict) -> List[str]:
    """Elements of plugins the SDK does not document: any of them may publish metadata under keys of its own."""
    return [n for n, e in elements.items() if e["factory"] not in DOCUMENTED]


def _names_output(elements: dict, ref: str) -> bool:
    """A dataSource names an element, an element's numbered output (`<element>_<N>`), or the frame info."""
    if ref in elements or ref == "ReservedFrameInfo":
        return True
    match = re.fullmatch(r"(?P<name>.+)_\d+", ref)
    return bool(match and match["name"] in elements)


def _check_flow(reading: GraphReading, where: str) -> List[str]:
    problems = []
    elements = reading.elements
    incoming = {name: 0 for name in elements}
    for element in elements.values():
        for target in _targets(element.get("next")):
            if _base(target) in incoming:
                incoming[_base(target)] += 1
    for name, count in incoming.items():
        if count == 0 and elements[name]["factory"] not in SOURCE_FACTORIES:
            problems.append(f"{where}: element {name!r} is never reached (no element's next names it)")
    cycle = _find_cycle(elements)
    if cycle:
        problems.append(f"{where}: elements form a cycle: {' -> '.join(cycle)}")
    if not reading.cameras:
        problems.append(f"{where}: no source element ({' or '.join(SOURCE_FACTORIES)})")
    for chain in reading.cameras:
        if chain.factory != "appsrc" and chain.decoder is None:
            problems.append(f"{where}: element {chain.source!r}: no mxpi_videodecoder follows the source")
    merges = [n for n, e in elements.items() if e["factory"] == "mxpi_parallel2serial"]
    for merge in merges:
        sources = [s.strip() for s in reading.props(merge).get("dataSource", "").split(",") if s.strip()]
        skips = [s for s in sources if elements.get(s, {}).get("factory") == "mxpi_skipframe"]
        if skips:
            problems.append(f"{where}: element {merge!r}: dataSource names {', '.join(skips)}: mxpi_skipframe adds "
                            f"no metadata, so nothing is forwarded under {merge!r} and the resize passes the frame "
                            f"unresized (MxpiParallel2Serial.cpp); name the decoders")
    if reading.resize and merges:
        if reading.decoded_picture_key is None:
            problems.append(f"{where}: element {reading.resize!r}: no dataSource; after {merges[0]!r} it must read "
                            f"{merges[0]!r} explicitly")
    return problems


def _find_cycle(elements: dict) -> Optional[List[str]]:
    state: Dict[str, int] = {}

    def visit(name: str, path: List[str]) -> Optional[List[str]]:
        state[name] = 1
        for target in _targets(elements[name].get("next")):
            following = _base(target)
            if following not in elements:
                continue
            if state.get(following) == 1:
                return path[path.index(following):] + [following] if following in path else [name, following]
            if following not in state:
                found = visit(following, path + [following])
                if found:
                    return found
        state[name] = 2
        return None

    for name in elements:
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def _check_against_config(reading: GraphReading, config: DaemonConfig, where: str) -> List[str]:
    problems = []
    if len(reading.cameras) != len(config.cameras):
        problems.append(f"{where}: {len(reading.cameras)} camera sources, the config has {len(config.cameras)} cameras")
    else:
        for chain, camera in zip(reading.cameras, config.cameras):
            if chain.url is not None and chain.url != camera.url:
                problems.append(f"{where}: element {chain.source!r}: its URL differs from camera {camera.id!r}'s in "
                                f"the config (graph sources follow the config's cameras, in order)")
            decoded = chain.decoder_props.get("inputVideoFormat", DEFAULT_FORMAT)
            if camera.codec != "auto" and chain.decoder and decoded != video_format(camera.codec):
                problems.append(f"{where}: element {chain.decoder!r}: inputVideoFormat {decoded}, camera "
                                f"{camera.id!r} streams {describe(camera.codec)} (codec: {camera.codec} in the "
                                f"config): the decoder would decode nothing")
            if chain.frame_skip != camera.frame_skip:
                problems.append(f"{where}: camera {camera.id!r}: frame skip {chain.frame_skip} in the graph, "
                                f"{camera.frame_skip} in the config")
    if reading.model_path is not None and pathlib.Path(reading.model_path).parent != pathlib.Path(config.model):
        problems.append(f"{where}: element {reading.infer!r}: modelPath {reading.model_path} is not in the config's "
                        f"model directory {config.model}")
    if (reading.stage2 is None) != (config.stage2 is None):
        problems.append(f"{where}: the config {'names' if config.stage2 else 'has no'} stage2, the graph "
                        f"{'has no' if reading.stage2 is None else 'has a'} {STAGE2_STREAM!r} stream (render the graph "
                        f"again: `inspector render`)")
    elif reading.stage2 is not None and reading.stage2.model_path is not None and \
            pathlib.Path(reading.stage2.model_path).parent != pathlib.Path(config.stage2.model):
        problems.append(f"{where}: stream {reading.stage2.stream!r}: modelPath {reading.stage2.model_path} is not in the "
                        f"config's stage2.model directory {config.stage2.model}")
    return problems


# MxpiVideoDecoder.cpp CHANNEL_ID_310_MAX / CHANNEL_ID_310P_MAX: the VDEC channels of the chip.
VDEC_CHANNELS = {"Ascend310": 32, "Ascend310B": 32, "Ascend310P": 256}


def ascend_problems(reading: GraphReading, where: str = "graph", spec: Optional[ModelSpec] = None) -> List[str]:
    """What the Ascend device refuses before it creates the stream; with the OM's manifest, also what the chip it
    was converted for refuses (its decoder's channels, DVPP's paste corner)."""
    problems = []
    soc = str((spec.aipp or {}).get("soc_version", "Ascend310")) if spec is not None else "Ascend310"
    channels = VDEC_CHANNELS.get(soc, VDEC_CHANNELS["Ascend310"])
    for name, element in reading.elements.items():
        value = element.get("props", {}).get("vdecChannelId")
        if element["factory"] == "mxpi_videodecoder" and value is not None and value.isdigit() \
                and int(value) >= channels:
            problems.append(f"{where}: element {name!r}: vdecChannelId {value}: the {soc}'s video decoder has "
                            f"{channels} channels (0..{channels - 1}; MxpiVideoDecoder.cpp): at most {channels} "
                            f"cameras per chip")
    if spec is not None and spec.letterbox.placement != "top-left":
        # MxpiImageResize.cpp: Resizer_KeepAspectRatio_Fit without padding placement pastes at the top left
        # (RightDown padding); a model trained on centred letterboxes would see its pictures shifted.
        problems.append(f"{where}: the model's letterbox placement is {spec.letterbox.placement!r}; DVPP pastes the "
                        f"picture top-left on the Ascend device: train and export with placement 'top-left'")
    infers = [n for n, e in reading.elements.items() if e["factory"] == "mxpi_tensorinfer"]
    if len(infers) != 1:
        problems.append(f"{where}: the Ascend device needs exactly one mxpi_tensorinfer, the graph has {len(infers)}")
    if reading.sink is None:
        problems.append(f"{where}: no appsink: the host cannot fetch the results")
    for chain in reading.cameras:
        if chain.factory == "filesrc":
            problems.append(f"{where}: element {chain.source!r}: a file source does not decode on the device "
                            f"(mxpi_videodecoder needs the frame metadata mxpi_rtspsrc attaches): serve the file "
                            f"over RTSP (e.g. GStreamer's rtsp server, tests/support/rtsp_server.py) and use its "
                            f"rtsp:// URL, or run it on the mock device")
    return problems


def graph_warnings(graph: object, source: str = "pipeline.json") -> List[str]:
    """What is allowed but worth saying: plugins this project does not know (a customer's own, or a newer SDK's)."""
    reading, _ = read_graph(graph, source)
    return reading_warnings(reading, source) if reading is not None else []


def reading_warnings(reading: GraphReading, source: str = "pipeline.json") -> List[str]:
    """`graph_warnings` of a graph already read."""
    warnings = []
    for name, element in reading.elements.items():
        if element["factory"] not in DOCUMENTED:
            warnings.append(f"{source}: element {name!r}: factory {element['factory']!r} is not a documented MindX "
                            f"SDK plugin (a plugin of your own must be installed on the box)")
        custom = _custom_publishers(reading.elements)
        for ref in (element.get("props", {}).get("dataSource") or "").split(","):
            ref = ref.strip()
            if ref and ref != "auto" and not _names_output(reading.elements, ref) and custom:
                warnings.append(f"{source}: element {name!r}: dataSource {ref!r} names no element; it may be a key "
                                f"that {', '.join(repr(c) for c in custom)} publishes (e.g. its outputKeys)")
        extra = set(element) - ELEMENT_KEYS
        if extra:  # the SDK's own samples carry such keys (e.g. "former" on an appsink): not read by anyone
            warnings.append(f"{source}: element {name!r}: keys {sorted(extra)} are not read by the SDK")
    return warnings


def load_graph(path) -> dict:
    return read_json(path)


def check_config_against_model(config: DaemonConfig, spec: ModelSpec, source: str = "config",
                               names: Optional[tuple] = None) -> List[str]:
    """names: the classes the daemon reports, when a second stage adds its own (pipeline/stage2.py)."""
    names = tuple(names or spec.class_names)
    problems = []
    if config.batching.max_batch not in spec.batch_gears:
        problems.append(f"{source}: batching.max_batch: {config.batching.max_batch} is not one of the model's "
                        f"dynamic-batch gears {list(spec.batch_gears)}")
    elif config.device == "ascend" and max(spec.batch_gears) != config.batching.max_batch:
        # mxpi_tensorinfer fills every batch to the model's largest gear (MxpiTensorInfer.cpp: maxBatchSize_ =
        # batchSizes.back()), whatever max_batch says: the OM's gears must end at max_batch.
        gears = ",".join(str(g) for g in spec.batch_gears if g <= config.batching.max_batch)
        problems.append(f"{source}: batching.max_batch: {config.batching.max_batch}, but the OM's largest gear is "
                        f"{max(spec.batch_gears)}: mxpi_tensorinfer fills batches to its largest gear; convert with "
                        f"`inspector convert --gears {gears}`")
    for camera in config.cameras:
        for zone in camera.zones:
            for name in zone.classes or []:
                if name not in names:
                    problems.append(f"{source}: cameras.{camera.id}.zones.{zone.name}.classes: {name!r} is not a "
                                    f"class of the model ({', '.join(names)})")
    problems += unknown_threshold_classes(config.thresholds, spec, f"{source}: thresholds", "the model")
    return problems
