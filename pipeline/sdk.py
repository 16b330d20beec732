"""What the MindX SDK (mxVision) accepts in a stream graph: its plugins, and for the plugins this project
renders, every property with its type and range.

Derived from the SDK's own reference and source (Ascend/VisionSDK, commit f156edc; the reference is copied in
../shared/reference/visionsdk/plugins.md): each plugin's property table ("属性") there, and `DefineProperties()`
in mxPlugins/src/module/<Plugin>/<Plugin>.cpp where the table gives no range (waitingTime 1..1000000 and
outputDeviceId -1..7 in MxpiTensorInfer.cpp, removeParentData 0..1 in MxpiParallel2Serial.cpp). A property the
reference marks as not modifiable ("是否可修改: 否") is refused when set. `validate` and the SDK double
(tests/pipeline/devices/fake_mindx.py, at CreateMultipleStreams) both check graphs against this table; the
reference is version 7.3.0, newer than what most Atlas 310 boxes run: a property missing from an older SDK
shows up there as a CreateMultipleStreams failure, named.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Prop:
    kind: str  # "int", "float", "str", "choice"
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()
    modifiable: bool = True
    required: bool = False


def _int(low=None, high=None, **kw) -> Prop:
    return Prop("int", low, high, **kw)


def _choice(*choices, **kw) -> Prop:
    return Prop("choice", choices=tuple(choices), **kw)


STR = Prop("str")
DEVICE_ID = _int(0, 255)  # "set by stream_config's deviceId" (plugins.md); accepted on every device plugin
RESIZE_TYPES = ("Resizer_Stretch", "Resizer_KeepAspectRatio_FastRCNN", "Resizer_KeepAspectRatio_Fit",
                "Resizer_OnlyPadding", "Resizer_KeepAspectRatio_Long", "Resizer_KeepAspectRatio_Short",
                "Resizer_Rescale", "Resizer_Rescale_Double", "Resizer_PaddleOCR", "Resizer_MS_Yolov4")

# Plugins whose every property is known: anything else set on them is refused.
PROPERTIES: Dict[str, Dict[str, Prop]] = {
    # plugins.md "mxpi_rtspsrc", 表 1
    "mxpi_rtspsrc": {"rtspUrl": Prop("str", required=True), "channelId": _int(0), "timeout": _int(0),
                     "fpsMode": _int(0, 1), "tlsValidationFlags": _int(0, 127), "tlsCertFilePathList": STR,
                     "async-handling": STR, "message-forward": STR},
    # plugins.md "mxpi_videodecoder", 表 1 (vdecChannelId up to 255 on Atlas inference products)
    "mxpi_videodecoder": {"inputVideoFormat": _choice("H264", "H265"),
                          "outputImageFormat": _choice("YUV420SP_NV12", "YUV420SP_NV21"),
                          "vdecChannelId": _int(0, 255), "outMode": _int(0, 1), "outPicWidthMax": _int(0, 4096),
                          "outPicHeightMax": _int(0, 4096), "skipFrame": _int(0, 100),
                          "vdecResizeWidth": _int(0, 4096), "vdecResizeHeight": _int(0, 4096),
                          "deviceId": DEVICE_ID},
    # plugins.md "mxpi_skipframe", 表 1
    "mxpi_skipframe": {"frameNum": _int(0, 100)},
    # plugins.md "mxpi_parallel2serial", 表 1; MxpiParallel2Serial.cpp DefineProperties
    "mxpi_parallel2serial": {"dataSource": STR, "removeParentData": _int(0, 1), "status": _int(0, 1)},
    # plugins.md "queue", 表 1: only leaky and max-size-buffers may be set
    "queue": {"leaky": _int(0, 2), "max-size-buffers": _int(0),
              "max-size-bytes": _int(0, modifiable=False), "max-size-time": _int(0, modifiable=False),
              "min-threshold-buffers": _int(0, modifiable=False), "min-threshold-bytes": _int(0, modifiable=False),
              "min-threshold-time": _int(0, modifiable=False), "flush-on-eos": Prop("str", modifiable=False),
              "silent": Prop("str", modifiable=False), "current-level-buffers": _int(0, modifiable=False),
              "current-level-bytes": _int(0, modifiable=False), "current-level-time": _int(0, modifiable=False)},
    # plugins.md "mxpi_imageresize", 表 1
    "mxpi_imageresize": {"deviceId": DEVICE_ID, "removeParentData": _int(0, 1), "parentName": STR, "dataSource": STR,
                         "resizeHeight": _int(6, 4096), "resizeWidth": _int(32, 4096), "maxDimension": _int(0),
                         "minDimension": _int(0), "resizeType": _choice(*RESIZE_TYPES), "scaleValue": _int(32, 8192),
                         "RGBValue": STR, "interpolation": _int(0, 4), "cvProcessor": _choice("ascend", "opencv"),
                         "paddingType": _choice("Padding_NO", "Padding_RightDown", "Padding_Around"),
                         "paddingHeight": _int(0), "paddingWidth": _int(0), "paddingColorB": Prop("float", 0, 255),
                         "paddingColorG": Prop("float", 0, 255), "paddingColorR": Prop("float", 0, 255),
                         "handleMethod": _choice("ascend", "opencv")},
    # plugins.md "mxpi_tensorinfer", 表 1; ranges from MxpiTensorInfer.cpp DefineProperties
    "mxpi_tensorinfer": {"modelPath": Prop("str", required=True), "dataSource": STR, "outputDeviceId": _int(-1, 7),
                         "waitingTime": _int(1, 1000000), "dynamicStrategy": _choice("Nearest", "Upper", "Lower"),
                         "singleBatchInfer": _int(0, 1), "outputHasBatchDim": _int(0, 1),
                         "skipModelCheck": _int(0, 1, modifiable=False), "deviceId": DEVICE_ID},
    # plugins.md "mxpi_dataserialize"
    "mxpi_dataserialize": {"outputDataKeys": STR, "eraseHeaderVecFlag": _int(0, 1)},
}

# Every plugin the reference documents (its section headings), plus GStreamer's own elements the SDK's samples
# use. A factory outside this set may be a customer's own plugin: a warning, not an error.
DOCUMENTED = frozenset({
    "appsrc", "mxpi_rtspsrc", "mxpi_dataserialize", "appsink", "fakesink", "filesink", "mxpi_parallel2serial",
    "mxpi_distributor", "mxpi_synchronize", "queue", "tee", "mxpi_datatransfer", "mxpi_nmsoverlapedroiV2",
    "mxpi_roigenerator", "mxpi_semanticsegstitcher", "mxpi_objectselector", "mxpi_skipframe", "mxpi_imagedecoder",
    "mxpi_imageresize", "mxpi_imagecrop", "mxpi_videodecoder", "mxpi_videoencoder", "mxpi_imageencoder",
    "mxpi_imagenormalize", "mxpi_opencvcentercrop", "mxpi_warpperspective", "mxpi_rotation", "mxpi_modelinfer",
    "mxpi_tensorinfer", "mxpi_objectpostprocessor", "mxpi_classpostprocessor", "mxpi_semanticsegpostprocessor",
    "mxpi_textgenerationpostprocessor", "mxpi_textobjectpostprocessor", "mxpi_keypointpostprocessor",
    "mxpi_motsimplesort", "mxpi_motsimplesortV2", "mxpi_facealignment", "mxpi_qualitydetection",
    "mxpi_dumpdata", "mxpi_loaddata", "mxpi_opencvosd", "mxpi_object2osdinstances", "mxpi_class2osdinstances",
    "mxpi_osdinstancemerger", "mxpi_channelselector", "mxpi_channelimagesstitcher",
    "mxpi_channelosdcoordsconverter", "mxpi_bufferstablizer",
    # GStreamer elements in the SDK's samples (the sample graphs in ../shared/reference/mindx)
    "filesrc", "h264parse", "h265parse", "qtdemux", "mxpi_passengerflowestimation",
})
# Keys every element may carry besides `props`, `next` (reference "总体说明": factory, props, next, nextMeta).
ELEMENT_KEYS = frozenset({"factory", "props", "next", "nextMeta"})


# Every mxpi_ plugin has these (plugins.md "总体说明", 表 1).
COMMON = {"status": _int(0, 1), "deviceId": DEVICE_ID, "dataSource": STR}


def check_properties(element: str, factory: str, props: Dict[str, str]) -> List[str]:
    """Every property of `element` that the SDK would refuse: unknown, not modifiable, malformed, out of range."""
    known = PROPERTIES.get(factory)
    if known is None:
        return []
    if factory.startswith("mxpi_"):
        known = {**COMMON, **known}
    problems = []
    for name, spec in known.items():
        if spec.required and name not in props:
            problems.append(f"element {element!r} ({factory}): property {name} is required")
    for name, value in props.items():
        spec = known.get(name)
        if spec is None:
            problems.append(f"element {element!r} ({factory}): no property {name!r} (known: {', '.join(known)})")
        elif not spec.modifiable:
            problems.append(f"element {element!r} ({factory}): property {name} cannot be set")
        else:
            problem = _check_value(spec, value)
            if problem:
                problems.append(f"element {element!r} ({factory}): {name}={value!r}: {problem}")
    return problems


def _check_value(spec: Prop, value: str) -> Optional[str]:
    if spec.kind == "str":
        return None
    if spec.kind == "choice":
        return None if value in spec.choices else f"not one of {', '.join(spec.choices)}"
    try:
        number = int(value) if spec.kind == "int" else float(value)
    except (TypeError, ValueError):
        return f"not {'an integer' if spec.kind == 'int' else 'a number'}"
    if spec.low is not None and number < spec.low or spec.high is not None and number > spec.high:
        low = "" if spec.low is None else f"{spec.low:g}"
        high = "" if spec.high is None else f"{spec.high:g}"
        return f"outside {low}..{high}"
    return None
