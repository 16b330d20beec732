"""ModelSpec: the one source of truth for model facts, shared by training, export, conversion and the daemon.

It is written as `manifest.json` beside every exported model. Nothing else types an input size, an anchor or a
normalisation twice: the network is rebuilt from `architecture` plus the cfg copy in the model directory, the
AIPP config is rendered from `normalisation`, and the daemon refuses a graph whose resize disagrees with
`input_height`/`input_width`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from models.crops import CropSettings
from models.darknet_cfg import DarknetCfg
from models.errors import SpecError

MANIFEST_NAME = "manifest.json"
CFG_NAME = "network.cfg"
SCHEMA_VERSION = 1
DEFAULT_GEARS = (1, 2, 4, 8)


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """What the network expects as input: `(pixel - mean) / std` per channel, channels in `colour` order.

    Darknet / this project's training: RGB, mean 0, std 255 (i.e. RGB / 255). The MindSpore model zoo's YOLOv4
    uses ImageNet mean/std instead; both are expressible here, and the AIPP renderer reads exactly this.
    """

    colour: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)

    def __post_init__(self):
        if self.colour not in ("RGB", "BGR"):
            raise SpecError(f"normalisation.colour: {self.colour!r} is not RGB or BGR")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise SpecError("normalisation: mean and std need three values, std > 0")


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """How a camera frame becomes the model input while keeping its aspect ratio.

    placement `top-left`: the scaled picture sits in the top-left corner, padding right and bottom. That is what
    DVPP's `Resizer_KeepAspectRatio_Fit` produces, so training uses it too; boxes map back with a scale only.
    """

    placement: str = "top-left"
    pad_value: int = 0

    def __post_init__(self):
        if self.placement not in ("top-left", "center"):
            raise SpecError(f"letterbox.placement: {self.placement!r} is not 'top-left' or 'center'")


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    mask: tuple[int, ...]
    stride: int
    scale_x_y: float
    grid: tuple[int, int]  # (height, width)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    architecture: str
    input_height: int
    input_width: int
    class_names: tuple[str, ...]
    anchors: tuple[tuple[float, float], ...]
    heads: tuple[HeadSpec, ...]
    normalisation: Normalisation = Normalisation()
    letterbox: Letterbox = Letterbox()
    batch_gears: tuple[int, ...] = DEFAULT_GEARS
    layout: str = "NCHW"
    # Filled in by export: which file holds the model and what its outputs are.
    model_file: str | None = None
    model_format: str | None = None
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Filled in by `inspector convert` for an OM: the AIPP baked into it (its input is then NV12 of the model
    # size) and the exported CPU model kept beside it, which the mock device runs from the same directory.
    aipp: dict[str, Any] | None = None
    cpu_model_file: str | None = None
    # A second-stage model (docs/cascade.md): it runs on crops around the first stage's `parents` objects, cut as
    # models/crops.py cuts them with these settings, which are the ones it was trained with.
    crops: dict[str, Any] | None = None

    def __post_init__(self):
        if not self.class_names:
            raise SpecError("class_names: at least one class is needed")
        if len(set(self.class_names)) != len(self.class_names):
            raise SpecError(f"class_names: duplicates in {list(self.class_names)}")
        if not self.batch_gears or sorted(set(self.batch_gears)) != list(self.batch_gears) or self.batch_gears[0] < 1:
            raise SpecError(f"batch_gears: {list(self.batch_gears)} must be increasing positive integers")
        if self.layout != "NCHW":
            raise SpecError(f"layout: only NCHW is supported, got {self.layout!r}")
        for head in self.heads:
            if max(head.mask) >= len(self.anchors):
                raise SpecError(f"heads: mask {head.mask} does not index the {len(self.anchors)} anchors")
        if self.crops is not None:
            if not isinstance(self.crops, dict):
                raise SpecError(f"crops: expected an object (parents, tile size, ...), got {self.crops!r}")
            parents = self.crops.get("parents")
            if not parents or not all(isinstance(p, str) and p for p in parents):
                raise SpecError(f"crops.parents: expected a non-empty list of class names, got {parents!r}")
            _ = self.crop_settings  # validates the geometry now, not at the first frame

    @property
    def crop_settings(self) -> CropSettings | None:
        """The crop geometry of a second-stage model, or None for a first stage."""
        if self.crops is None:
            return None
        known = {f.name for f in dataclasses.fields(CropSettings)}
        unknown = set(self.crops) - known - {"parents"}
        if unknown:
            raise SpecError(f"crops: unknown keys {sorted(unknown)}")
        try:
            return CropSettings(**{k: v for k, v in self.crops.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise SpecError(f"crops: {exc}") from exc

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def cpu_model_name(self) -> str | None:
        """The file the CPU runtimes run: the export itself, or the ONNX kept beside a converted OM."""
        return self.cpu_model_file if self.model_format == "om" else self.model_file

    @property
    def num_candidates(self) -> int:
        return sum(h.grid[0] * h.grid[1] * len(h.mask) for h in self.heads)

    @classmethod
    def from_cfg(cls, cfg: DarknetCfg, class_names: list[str] | tuple[str, ...], **kwargs) -> "ModelSpec":
        if len(class_names) != cfg.classes:
            raise SpecError(f"{cfg.source}: the network has {cfg.classes} classes, {len(class_names)} names given")
        heads = tuple(HeadSpec(h.mask, h.stride, h.scale_x_y, (h.grid_height, h.grid_width)) for h in cfg.heads)
        return cls(cfg.name, cfg.height, cfg.width, tuple(class_names), cfg.anchors, heads, **kwargs)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        return data

    def save(self, directory: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "ModelSpec":
        data = dict(data)
        version = data.pop("schema_version", None)
        if version != SCHEMA_VERSION:
            raise SpecError(f"{source}: schema_version {version!r} is not {SCHEMA_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise SpecError(f"{source}: unknown keys {sorted(unknown)}")
        missing = {f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING} - set(data)
        if missing:
            raise SpecError(f"{source}: missing keys {sorted(missing)}")
        try:
            data["class_names"] = tuple(data["class_names"])
            data["anchors"] = tuple(tuple(float(v) for v in pair) for pair in data["anchors"])
            data["heads"] = tuple(HeadSpec(tuple(h["mask"]), int(h["stride"]), float(h["scale_x_y"]),
                                           tuple(h["grid"])) for h in data["heads"])
            if "normalisation" in data:
                n = data["normalisation"]
                data["normalisation"] = Normalisation(n["colour"], tuple(n["mean"]), tuple(n["std"]))
            if "letterbox" in data:
                data["letterbox"] = Letterbox(**data["letterbox"])
            if "batch_gears" in data:
                data["batch_gears"] = tuple(int(g) for g in data["batch_gears"])
            return cls(**data)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from exc
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise SpecError(f"{source}: malformed value ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "ModelSpec":
        """From a manifest.json or a model directory holding one."""
        path = pathlib.Path(path)
        if not path.exists():
            raise SpecError(f"{path}: no such model directory or manifest (an `inspector export` output)")
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SpecError(f"{path}: expected a JSON object")
        return cls.from_dict(data, str(path))


def read_class_names(value: str) -> list[str]:
    """Class names from a file (one per line, blank lines and '#' comments ignored) or a comma-separated list."""
    path = pathlib.Path(value)
    if path.is_file():
        names = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n]
        if not names:
            raise SpecError(f"{path}: no class names in the file")
        return names
    if "," in value or value.isidentifier():
        return [n.strip() for n in value.split(",") if n.strip()]
    raise SpecError(f"{value}: neither a file of class names nor a comma-separated list")
