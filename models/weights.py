"""Weight import: Darknet `.weights` and MindSpore `.ckpt` into a DarknetYolo, with a load report.

Nothing loads half-way: the whole state is read and checked against the network first, and parameters are
assigned only after every check passed.

Canonical tensor names are those of a bare `DarknetYolo`: `layers.<cfg index>.conv.weight`,
`layers.<i>.conv.bias`, `layers.<i>.bn.{gamma,beta,moving_mean,moving_variance}`. A wrapper's prefix
(`network.` inside DecodedYolo, a training cell's `backbone.`) is stripped when reading and matching.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import struct
from typing import Iterable, Mapping

import numpy as np

from models.darknet_cfg import DarknetCfg, parse_cfg
from models.errors import WeightsError

_CANONICAL = re.compile(r"(?:^|.*?\.)(layers\.\d+\..+)$")
# Optimiser state MindSpore saves beside the weights (Momentum: moments, Adam: moment1/2, RMSProp: mean_square,
# moment, mean_grad, Adagrad: accum) and training scalars: never network weights.
OPTIMIZER_STATE = re.compile(r"^(moments|moment1|moment2|moment|mean_square|mean_grad|accum|adam_[mv]|"
                             r"learning_rate|global_step|momentum|beta1_power|beta2_power)(\.|$)")


def canonical_name(name: str) -> str | None:
    """`network.layers.12.bn.gamma` -> `layers.12.bn.gamma`; None for names outside the layer list."""
    match = _CANONICAL.match(name)
    return match.group(1) if match else None


def layer_of(name: str) -> int:
    return int(canonical_name(name).split(".")[1])  # type: ignore[union-attr]


@dataclasses.dataclass(frozen=True)
class DarknetHeader:
    major: int
    minor: int
    revision: int
    seen: int
    size: int  # bytes


@dataclasses.dataclass
class LoadReport:
    """What a weight import did, tensor by tensor. Printed as JSON by the CLI."""

    source: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = dataclasses.field(default_factory=list)
    # Layers (cfg indices) the source never contained, by design (a backbone-only file): expected to be new.
    absent_layers: list[int] = dataclasses.field(default_factory=list)
    # Class count the source was written for, where the source tells (a Darknet file's size does).
    source_classes: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def uninitialised_layers(self) -> list[int]:
        names = self.missing + [name for name, _, _ in self.mismatched]
        return sorted({layer_of(name) for name in names})

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "loaded": len(self.loaded),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [{"name": n, "network": list(a), "source": list(b)} for n, a, b in self.mismatched],
            "uninitialised_layers": self.uninitialised_layers,
            "source_classes": self.source_classes,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------------------------
# Darknet .weights


def darknet_layout(cfg: DarknetCfg) -> list[tuple[int, list[tuple[str, tuple[int, ...]]]]]:
    """Tensors of each convolutional layer in the order the .weights file stores them."""
    layout = []
    in_channels = int(cfg.net.get("channels", 3))
    for layer in cfg.layers:
        if layer.kind == "convolutional":
            n = layer.out_channels
            size = layer.get("size", 1, int)
            groups = layer.get("groups", 1, int)
            prefix = f"layers.{layer.index}."
            if layer.get("batch_normalize", 0, int):
                tensors = [(prefix + "bn.beta", (n,)), (prefix + "bn.gamma", (n,)),
                           (prefix + "bn.moving_mean", (n,)), (prefix + "bn.moving_variance", (n,))]
            else:
                tensors = [(prefix + "conv.bias", (n,))]
            tensors.append((prefix + "conv.weight", (n, in_channels // groups, size, size)))
            layout.append((layer.index, tensors))
        in_channels = layer.out_channels
    return layout


def _layout_floats(layout) -> list[int]:
    return [sum(int(np.prod(shape)) for _, shape in tensors) for _, tensors in layout]


def read_darknet_header(data: bytes, path: str) -> DarknetHeader:
    if len(data) < 16:
        raise WeightsError(f"{path}: {len(data)} bytes is too short for a Darknet .weights header")
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    if not (0 <= major <= 100 and 0 <= minor <= 100 and 0 <= revision < 10**6):
        raise WeightsError(f"{path}: header version {major}.{minor}.{revision} is not a Darknet .weights file")
    if major * 10 + minor >= 2:
        if len(data) < 20:
            raise WeightsError(f"{path}: truncated header")
        (seen,) = struct.unpack_from("<Q", data, 12)
        size = 20
    else:
        (seen,) = struct.unpack_from("<i", data, 12)
        size = 16
    return DarknetHeader(major, minor, revision, seen, size)


def read_darknet_weights(path: str | pathlib.Path, cfg: DarknetCfg) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Read a Darknet .weights file written for `cfg`'s architecture (any class count, any input size).

    The class count of the file is derived from its size: a full file must match the cfg at exactly one class
    count. A file cut at a layer boundary before the first head (`yolov4.conv.137`) is a backbone-only file;
    every later layer is reported as absent. Anything else is an error that names the file and the nearest
    layer boundary.
    """
    path = str(path)
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read: {exc.strerror}") from exc
    header = read_darknet_header(data, path)
    body = len(data) - header.size
    if body % 4:
        raise WeightsError(f"{path}: {body} bytes after the header is not a whole number of float32 values: "
                           "the file is truncated or not a Darknet .weights file")
    floats = body // 4

    source_cfg = _darknet_source_cfg(cfg, floats, path)
    layout = darknet_layout(source_cfg)
    counts = _layout_floats(layout)
    cut = len(layout)
    if floats != sum(counts):
        cut = int(np.searchsorted(np.cumsum(counts), floats)) + 1  # layouts up to here are complete

    values = np.frombuffer(data, dtype="<f4", count=floats, offset=header.size)
    state: dict[str, np.ndarray] = {}
    offset = 0
    for _, tensors in layout[:cut]:
        for name, shape in tensors:
            n = int(np.prod(shape))
            state[name] = values[offset:offset + n].reshape(shape).astype(np.float32)
            offset += n
    report = LoadReport(source=path, source_classes=None if cut < len(layout) else source_cfg.classes)
    report.notes.append(f"darknet header {header.major}.{header.minor}.{header.revision}, seen {header.seen}")
    if source_cfg.classes != cfg.classes:
        report.notes.append(f"file has {source_cfg.classes} classes, network {cfg.classes}")
    if cut < len(layout):
        first_absent = layout[cut][0]
        report.absent_layers = [layer.index for layer in cfg.layers if layer.index >= first_absent]
        report.notes.append(f"backbone-only file: layers {first_absent}..{len(cfg.layers) - 1} are not in it")
    return state, report


def _darknet_source_cfg(cfg: DarknetCfg, floats: int, path: str) -> DarknetCfg:
    """The cfg at the class count the file was written for (or cfg itself for a backbone-only file)."""
    layout = darknet_layout(cfg)
    counts = np.cumsum(_layout_floats(layout))
    first_head = min(cfg.class_dependent_convs)
    backbone_boundaries = {int(c): idx for (idx, _), c in zip(layout, counts) if idx < first_head}
    if floats in backbone_boundaries:
        return cfg
    at = {}
    for classes in (1, 2):
        at[classes] = sum(_layout_floats(darknet_layout(parse_cfg(cfg.source, classes, cfg.height, cfg.width))))
    slope = at[2] - at[1]
    classes, remainder = divmod(floats - (at[1] - slope), slope)
    if remainder == 0 and classes >= 1:
        return parse_cfg(cfg.source, int(classes), cfg.height, cfg.width)
    complete = int(np.searchsorted(counts, floats, side="right"))
    last = layout[complete - 1][0] if complete else None
    left = floats - (int(counts[complete - 1]) if complete else 0)
    raise WeightsError(
        f"{path}: {floats} float32 values match neither a full {cfg.name} file (any class count) nor the end of "
        f"a layer before the head; at {cfg.classes} classes the last complete layer would be "
        f"{last} with {left} values left over: the file is truncated or written for another cfg")


def write_darknet_weights(path: str | pathlib.Path, cfg: DarknetCfg, state: Mapping[str, np.ndarray],
                          seen: int = 0, last_layer: int | None = None) -> None:
    """Write `state` (canonical names) as a Darknet .weights file (version 0.2.5); with `last_layer`, a
    backbone-only file holding layers 0..last_layer (`yolov4.conv.137` is last_layer=136)."""
    with open(path, "wb") as handle:
        handle.write(struct.pack("<3iQ", 0, 2, 5, seen))
        for index, tensors in darknet_layout(cfg):
            if last_layer is not None and index > last_layer:
                break
            for name, shape in tensors:
                array = np.asarray(state[name], dtype="<f4")
                if array.shape != shape:
                    raise WeightsError(f"{path}: {name} has shape {array.shape}, the cfg needs {shape}")
                handle.write(array.tobytes())


# --------------------------------------------------------------------------------------------------------------
# MindSpore checkpoints


@dataclasses.dataclass(frozen=True)
class NameMap:
    """How another naming scheme's tensor names become canonical ones.

    A JSON or YAML file: `{"rules": [[regex, replacement], ...], "drop": [regex, ...], "covers_layers":
    [first, last]}`. Rules are tried in order, the first full match wins; a name that no rule matches and no
    `drop` pattern matches is reported as unexpected (never guessed). `covers_layers` says which cfg layers
    the source checkpoint holds (a backbone-only checkpoint: `[0, 136]`); layers outside are expected new.
    """

    rules: tuple[tuple[re.Pattern, str], ...]
    drop: tuple[re.Pattern, ...] = ()
    covers_layers: tuple[int, int] | None = None
    source: str = "<inline>"

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "NameMap":
        import yaml

        try:
            raw = yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise WeightsError(f"{path}: cannot read name map: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
            raise WeightsError(f"{path}: a name map needs a 'rules' list of [regex, replacement] pairs")
        allowed = {"rules", "drop", "covers_layers", "description"}
        unknown = set(raw) - allowed
        if unknown:
            raise WeightsError(f"{path}: unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(allowed))})")
        covers = raw.get("covers_layers")
        if covers is not None and not (isinstance(covers, list) and len(covers) == 2
                                       and all(isinstance(v, int) for v in covers) and 0 <= covers[0] <= covers[1]):
            raise WeightsError(f"{path}: covers_layers must be [first, last] layer indices, got {covers!r}")
        rules = []
        for position, rule in enumerate(raw["rules"]):
            if not (isinstance(rule, list) and len(rule) == 2 and all(isinstance(r, str) for r in rule)):
                raise WeightsError(f"{path}: rules[{position}] must be [regex, replacement], got {rule!r}")
            try:
                rules.append((re.compile(rule[0]), rule[1]))
            except re.error as exc:
                raise WeightsError(f"{path}: rules[{position}]: bad regex {rule[0]!r}: {exc}") from exc
        drop = tuple(re.compile(p) for p in raw.get("drop", []))
        return cls(tuple(rules), drop, tuple(covers) if covers else None, str(path))

    def apply(self, name: str) -> str | None | bool:
        """Canonical name, None when dropped, False when nothing matched."""
        for pattern in self.drop:
            if pattern.fullmatch(name):
                return None
        for pattern, replacement in self.rules:
            if pattern.fullmatch(name):
                return pattern.sub(replacement, name)
        return False


def read_checkpoint(path: str | pathlib.Path, name_map: NameMap | None = None) -> tuple[dict[str, np.ndarray], LoadReport]:
    """A MindSpore checkpoint as canonical-name arrays. Optimiser state and other non-layer entries are skipped
    (listed as notes); names that a name map does not cover are reported as unexpected."""
    from models import msenv  # noqa: F401
    import mindspore as ms

    path = str(path)
    if not pathlib.Path(path).is_file():
        raise WeightsError(f"{path}: no such checkpoint")
    try:
        params = ms.load_checkpoint(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable MindSpore checkpoint: {exc}") from exc
    report = LoadReport(source=path)
    state: dict[str, np.ndarray] = {}
    skipped = []
    for name, param in params.items():
        if name_map is not None:
            target = name_map.apply(name)
            if target is None:
                continue
            if target is False:
                report.unexpected.append(name)
                continue
        else:
            target = canonical_name(name)
            if target is None or OPTIMIZER_STATE.match(name):
                skipped.append(name)
                continue
        state[target] = param.asnumpy()
    if skipped:
        report.notes.append(f"skipped {len(skipped)} non-network entries (e.g. {skipped[0]})")
    return state, report


# --------------------------------------------------------------------------------------------------------------
# Applying a state to a network


def network_parameters(network) -> dict:
    """Canonical name -> Parameter for every layer parameter of a DarknetYolo (or a cell wrapping one)."""
    result = {}
    for name, param in network.parameters_and_names():
        canonical = canonical_name(name)
        if canonical is not None:
            result[canonical] = param
    return result


def apply_state(network, state: Mapping[str, np.ndarray], report: LoadReport, *, strict: bool,
                expected_new_layers: Iterable[int] = ()) -> LoadReport:
    """Assign `state` to `network` and complete `report`.

    strict: fail (assigning nothing) unless every missing or shape-mismatched tensor belongs to a layer in
    `expected_new_layers` and no tensor is unexpected.
    """
    params = network_parameters(network)
    expected_new = set(expected_new_layers)
    plan = []
    for name, array in state.items():
        if name not in params:
            report.unexpected.append(name)
            continue
        want = tuple(params[name].shape)
        if tuple(array.shape) != want:
            report.mismatched.append((name, want, tuple(array.shape)))
            continue
        plan.append((name, array))
    report.missing = sorted((n for n in params if n not in state), key=_layer_sort_key)
    report.loaded = [name for name, _ in plan]
    if not plan:
        raise WeightsError(f"{report.source}: no tensor matches the network: wrong architecture or name map "
                           f"(first unexpected: {report.unexpected[:3]})")
    if strict:
        problems = [n for n in report.missing if layer_of(n) not in expected_new]
        problems += [n for n, _, _ in report.mismatched if layer_of(n) not in expected_new]
        if problems or report.unexpected:
            raise WeightsError(
                f"{report.source}: strict load refused, nothing was assigned: "
                f"{len(problems)} missing or mismatched tensors outside the expected-new layers "
                f"{sorted(expected_new)} (first: {problems[:3]}), {len(report.unexpected)} unexpected "
                f"(first: {report.unexpected[:3]})")
    import mindspore as ms

    for name, array in plan:
        params[name].set_data(ms.Tensor(np.ascontiguousarray(array), dtype=params[name].dtype))
    return report


def _layer_sort_key(name: str) -> tuple[int, str]:
    return layer_of(name), name


def load_weights(network, path: str | pathlib.Path, *, strict: bool = False, name_map: str | None = None,
                 expected_new_layers: Iterable[int] | None = None) -> LoadReport:
    """Load a .weights or .ckpt file into `network` (a DarknetYolo, or a cell whose `network` is one).

    expected_new_layers defaults to the class-dependent head convs plus, for a backbone-only Darknet file, the
    layers after its cut: in strict mode their tensors may be missing or of another shape (a new class list),
    nothing else may. Pass () when everything must load (export).
    """
    cfg = _cfg_of(network)
    suffix = pathlib.Path(path).suffix.lower()
    if suffix == ".ckpt":
        mapping = NameMap.load(name_map) if name_map else None
        state, report = read_checkpoint(path, mapping)
        if mapping is not None and mapping.covers_layers is not None:
            first, last = mapping.covers_layers
            report.absent_layers = [layer.index for layer in cfg.layers if not first <= layer.index <= last]
        elif mapping is None and state:
            # One of our own checkpoints (canonical names) of a network that ends earlier (yolov4-tiny into
            # yolov4-tiny-3l, whose third head follows the same first layers): the layers after its deepest one
            # are new by design. A foreign checkpoint declares what it covers in its name map instead.
            deepest = max(layer_of(name) for name in state)
            report.absent_layers = [layer.index for layer in cfg.layers if layer.index > deepest]
            if report.absent_layers:
                report.notes.append(f"checkpoint ends at layer {deepest}: layers {report.absent_layers[0]}.."
                                    f"{report.absent_layers[-1]} are not in it")
    else:
        if name_map:
            raise WeightsError(f"{path}: a name map applies to checkpoints only")
        state, report = read_darknet_weights(path, cfg)
    if expected_new_layers is None:
        expected_new_layers = set(cfg.class_dependent_convs) | set(report.absent_layers)
    return apply_state(network, state, report, strict=strict, expected_new_layers=expected_new_layers)


def _cfg_of(network) -> DarknetCfg:
    cfg = getattr(network, "cfg", None) or getattr(getattr(network, "network", None), "cfg", None)
    if cfg is None:
        raise TypeError("expected a DarknetYolo or a cell with a .network DarknetYolo")
    return cfg


def save_checkpoint(network, path: str | pathlib.Path, extra: Mapping[str, object] | None = None) -> None:
    """Save the layer parameters under canonical names (plus `extra` scalars such as epoch)."""
    import mindspore as ms

    entries = [{"name": name, "data": param} for name, param in network_parameters(network).items()]
    ms.save_checkpoint(entries, str(path), append_dict=dict(extra or {}) or None)


def report_json(report: LoadReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
