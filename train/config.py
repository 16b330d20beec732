"""The training config (YAML): typed, strict, every key documented here. Errors name the file and key.

A config may name another as its `base` and give only what differs (an experiment beside the config it varies):
sections (data, data.crops, augment, optim, loss, transfer) merge key by key, any other value replaces the
base's (lists such as data.sources, mappings such as data.label_fraction), and `out` is never inherited, so a
derived run cannot write into its base's folder. Each relative path is relative to the file that gives it."""

from __future__ import annotations

import copy
import pathlib
import typing
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, Field, ValidationError, model_validator

from core.configfile import Strict, format_validation_errors, read_yaml
from core.errors import ConfigError


class CropDataConfig(Strict):
    """A second-stage model's training set, cut from ordinary annotations (docs/cascade.md; geometry: models/crops.py).
    `data.classes` are then the child classes found inside the crops (e.g. [defect])."""
    parents: list[str] = Field(min_length=1, description="Classes of the annotated objects the crops are cut "
                                                         "around (e.g. [insulator]); the first stage's classes.")
    margin: float = Field(0.25, ge=0, le=2, description="Added on every side, fraction of the parent's short side.")
    max_aspect: float = Field(1.5, ge=1, description="A parent longer than this times its width is cut into "
                                                     "square tiles along its length.")
    overlap: float = Field(0.25, ge=0, lt=1, description="Overlap of neighbouring tiles, fraction of their side.")
    min_side: int = Field(32, ge=2, description="Smallest crop side in pixels.")
    max_side: Optional[float] = Field(0.3, gt=0, le=1, description="Largest tile side, fraction of the picture's "
                                                                   "shorter side: a diagonal string's box is "
                                                                   "covered by a grid of such tiles (null: tiles "
                                                                   "as wide as the box's short side).")
    min_visible: float = Field(0.5, gt=0, le=1, description="A child is a target of a crop when at least this "
                                                            "fraction of its area lies inside.")
    jitter: float = Field(0.1, ge=0, lt=0.5, description="Training crops: each parent box edge moved by up to "
                                                         "this fraction of its short side, as a detector's box "
                                                         "is off; held-out crops are cut from the exact box.")
    negatives_per_positive: Optional[float] = Field(
        3.0, gt=0, description="Training crops with no child: at most this many per crop with one (sampled with "
                               "the split seed); null keeps every one. Held-out crops are all kept.")
    tile_jitter: float = Field(0.0, ge=0, le=1, description="Training crops: each parent's largest tile side "
                                                           "(max_side) multiplied by a random factor between "
                                                           "1/(1+j) and 1+j, as a camera nearer or farther than "
                                                           "the training photographs' makes a defect larger or "
                                                           "smaller in its tile; held-out crops and the deployed "
                                                           "ones use max_side. 0: off (no random draw).")
    copies: int = Field(1, ge=1, le=8, description="Training crops: each parent is cut this many times, each "
                                                   "time from its own jittered box (and tile size), so that a "
                                                   "defect is seen at several places in its tile, as the "
                                                   "deployed tiles fall wherever the detector's box puts them; "
                                                   "held-out crops are cut once. Needs jitter or tile_jitter.")

    @model_validator(mode="after")
    def _something_to_jitter(self):
        if self.tile_jitter and self.max_side is None:
            raise ValueError("tile_jitter: needs max_side (the tile side it varies); max_side is null")
        if self.copies > 1 and not (self.jitter or self.tile_jitter):
            raise ValueError(f"copies: {self.copies} identical cuts of each parent without jitter or tile_jitter "
                             "(set one of them, or copies: 1)")
        return self


FORMATS = Literal["voc", "coco", "yolo"]
FORMAT_HELP = ("Annotation format: voc (folders with images/ and labels/ or Annotations/), coco (a JSON file, or a "
               "folder holding one, images beside it), yolo (images/ + labels/*.txt).")


class SourceConfig(Strict):
    """One data set of several in a training: its own format, its class names mapped to the model's, its own
    held-out split (so every source is evaluated on its own pictures)."""
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Names the source in the logs "
                                                                                 "and the per-source figures.")
    path: str = Field(description="Data set root or COCO JSON, as data.path.")
    format: FORMATS = Field("voc", description=FORMAT_HELP)
    class_map: dict[str, Optional[str]] = Field(
        default_factory=dict, description="The source's class name -> the model's (data.classes), e.g. {defect: "
                                          "missing-cap}; null leaves that class out. A class not named here keeps "
                                          "its name, if the model has it.")
    val_path: Optional[str] = Field(None, description="This source's separate validation set; default: a split.")
    val_fraction: Optional[float] = Field(None, gt=0, lt=1, description="This source's held-out fraction "
                                                                        "(default: data.val_fraction).")


class DataConfig(Strict):
    path: Optional[str] = Field(None, description="Data set root (VOC: folders with images/ and labels/ or "
                                                  "Annotations/). Or `sources` for several data sets.")
    format: FORMATS = Field("voc", description=FORMAT_HELP)
    sources: list[SourceConfig] = Field(default_factory=list, description="Several data sets in one training "
                                                                         "(instead of path and format).")
    classes: list[str] = Field(min_length=1, description="Class names, in the model's order.")
    val_path: Optional[str] = Field(None, description="Separate validation set; default: a split of `path`.")
    val_fraction: float = Field(0.15, gt=0, lt=1, description="Held-out fraction when val_path is not given.")
    split_seed: int = Field(0, description="Seed of the train/validation split (by image, per folder).")
    label_fraction: dict[str, float] = Field(
        default_factory=dict, description="Keep only this fraction of the training images that contain a class "
                                          "(e.g. {defect: 0.25}); the held-out set is never reduced.")
    crops: Optional[CropDataConfig] = Field(None, description="Train a second stage on crops around `parents` "
                                                              "objects (written to <out>/crops, held out by "
                                                              "source picture with the split above).")

    @model_validator(mode="after")
    def _one_kind_of_source(self):
        if (self.path is None) == (not self.sources):
            raise ValueError("give either path (one data set) or sources (several), not both or neither")
        if self.sources:
            if self.val_path is not None:
                raise ValueError("val_path: with sources, give each source its own val_path")
            names = [source.name for source in self.sources]
            if len(set(names)) != len(names):
                raise ValueError(f"sources: names must differ, got {names}")
            for source in self.sources:
                targets = {t for t in source.class_map.values() if t is not None}
                unknown = sorted(targets - set(self.classes))
                if unknown:
                    raise ValueError(f"sources.{source.name}.class_map: {unknown} are not in data.classes "
                                     f"{self.classes}")
        for name, fraction in self.label_fraction.items():
            if name not in self.classes:
                raise ValueError(f"label_fraction.{name}: not in data.classes {self.classes}")
            if not 0 < fraction <= 1:
                raise ValueError(f"label_fraction.{name}: {fraction} is not a fraction in (0, 1]")
        return self

    def source_list(self) -> list[SourceConfig]:
        """Every source, a single `path` as one named `data`."""
        if self.sources:
            return list(self.sources)
        return [SourceConfig(name="data", path=self.path, format=self.format, val_path=self.val_path)]


class AugmentSettings(Strict):
    scale: float = Field(0.25, ge=0, lt=1, description="Random zoom range around 1.")
    translate: float = Field(0.1, ge=0, lt=0.5, description="Random shift, fraction of the picture.")
    hsv_h: float = Field(0.015, ge=0, le=0.5, description="Hue jitter.")
    hsv_s: float = Field(0.5, ge=0, le=1, description="Saturation jitter.")
    hsv_v: float = Field(0.3, ge=0, le=1, description="Value jitter.")
    flip: float = Field(0.5, ge=0, le=1, description="Horizontal flip probability.")
    rotate90: float = Field(0.0, ge=0, le=1, description="Probability of a quarter turn (either way) of each picture "
                                                         "(each of a mosaic's four): for objects seen in every "
                                                         "orientation, e.g. insulator strings hanging, strung "
                                                         "horizontally or across the view.")
    mosaic: float = Field(0.0, ge=0, le=1, description="Probability of a 4-picture mosaic.")


class OptimConfig(Strict):
    optimizer: Literal["sgd", "nesterov", "adam", "adamw", "rmsprop"] = Field(
        "nesterov", description="SGD with momentum (sgd), SGD with Nesterov momentum, Adam, AdamW or RMSProp.")
    lr: float = Field(0.01, gt=0, description="Peak learning rate.")
    momentum: float = Field(0.937, ge=0, lt=1, description="Momentum (SGD) or beta1 (Adam).")
    weight_decay: float = Field(5e-4, ge=0, description="Weight decay, not applied to BatchNorm or biases.")
    warmup_epochs: float = Field(3.0, ge=0, description="Linear warm-up from 0.")
    schedule: Literal["cosine", "step"] = Field("cosine", description="Decay after warm-up.")
    final_lr_fraction: float = Field(0.01, gt=0, le=1, description="Cosine: final lr as a fraction of lr.")
    steps: list[int] = Field(default_factory=list, description="Step schedule: epochs where lr is multiplied by 0.1.")
    backbone_lr_scale: float = Field(1.0, gt=0, le=1, description="Learning-rate factor for the layers before the "
                                                                  "first head conv (transfer learning).")


class LossConfig(Strict):
    box: float = Field(0.05, ge=0, description="Weight of the CIoU box loss.")
    obj: float = Field(1.0, ge=0, description="Weight of the objectness loss.")
    cls: float = Field(0.5, ge=0, description="Weight of the class loss.")
    ignore_iou: float = Field(0.7, gt=0, le=1, description="Negatives overlapping a ground truth above this IoU "
                                                           "are not penalised for objectness.")
    anchor_iou: float = Field(0.213, gt=0, lt=1, description="Shape IoU above which an anchor is assigned.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Class label smoothing.")


class TransferConfig(Strict):
    weights: Optional[str] = Field(None, description="Pretrained .weights (full or backbone-only) or .ckpt.")
    name_map: Optional[str] = Field(None, description="Name map for a checkpoint under another naming scheme.")
    reinit_head: Optional[bool] = Field(None, description="Re-initialise the class-dependent head convs after "
                                                       "loading. Default (null): only where their shape differs "
                                                       "(another class count); true for a new class list of the "
                                                       "same length (insulator -> defect).")
    freeze_layers: int = Field(0, ge=0, description="Freeze cfg layers 0..N-1 (BatchNorm statistics too).")
    unfreeze_epoch: Optional[int] = Field(None, ge=1, description="Epoch at which frozen layers start training.")
    rifle_every: Optional[int] = Field(None, ge=1, description="RIFLE: re-initialise the class-dependent head every "
                                                            "K epochs.")
    rifle_final_fraction: float = Field(0.3, ge=0, lt=1, description="RIFLE stops in this final fraction of "
                                                                     "the epochs.")
    l2sp: Optional[float] = Field(None, gt=0, description="L2-SP: pull the pretrained conv weights towards their "
                                                         "starting values with this weight (alpha, e.g. 0.01) "
                                                         "instead of decaying them towards 0; a re-initialised "
                                                         "head keeps optim.weight_decay. Needs `weights`.")

    @model_validator(mode="after")
    def _l2sp_needs_a_start(self):
        if self.l2sp is not None and not self.weights:
            raise ValueError("l2sp: pulls towards pretrained weights: set transfer.weights")
        return self


class TrainConfig(Strict):
    base: Optional[str] = Field(None, description="Another training config this one varies: its keys apply "
                                                  "where this file does not give them (the module's docstring "
                                                  "says how they merge); `out` is this file's own.")
    cfg: str = Field("yolov4-tiny", description="Darknet cfg file (relative to the config) or bundled name.")
    input_size: int = Field(416, ge=64, description="Square model input size (multiple of 32).")
    anchors: Optional[list[Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)]]] = Field(
        None, description="Anchor (w, h) pairs in input pixels, as many as the cfg's, replacing its own: "
                          "`inspector anchors --config` fits them to the training boxes and prints this key.")
    data: DataConfig
    epochs: int = Field(100, ge=1, description="Training epochs.")
    batch_size: int = Field(8, ge=1, description="Images per step.")
    seed: int = Field(0, description="Seed for initialisation, sampling and augmentation.")
    augment: AugmentSettings = Field(default_factory=AugmentSettings)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    eval_every: int = Field(5, ge=1, description="Evaluate mAP on the held-out set every N epochs (and at the end).")
    early_stop_patience: Optional[int] = Field(None, ge=1, description="Stop after this many evaluations without a "
                                                                    "better mAP@0.5.")
    out: str = Field("runs/train", description="Output directory: checkpoints, metrics, plots, export.")
    export_formats: list[Literal["onnx", "mindir"]] = Field(default_factory=lambda: ["onnx"],
                                                            description="Exported at the end from the best model.")


def with_overrides(data: dict, overrides: dict, source: str) -> dict:
    """`data` with each override applied: a dotted key reaches into nested mappings (`data.label_fraction.broken`),
    creating them where absent; a key that runs into a value that is not a mapping is an error naming it."""
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        parts = key.split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: override {key}: {'.'.join(parts[:depth + 1])} is not a mapping "
                                  f"(it is {child!r})")
            node = child
        node[parts[-1]] = value
    return data


# Where a config holds paths: (section, key); data.sources' paths and a cfg file are handled beside them.
_PATH_KEYS = ((None, "base"), (None, "out"), ("data", "path"), ("data", "val_path"), ("transfer", "weights"),
              ("transfer", "name_map"))


def _with_absolute_paths(data: dict, folder: pathlib.Path) -> dict:
    """A config file's mapping (before validation) with each relative path in it made absolute against `folder`,
    the file's; a value of the wrong type is left for validation to name."""
    def absolute(value):
        if isinstance(value, str) and not pathlib.Path(value).is_absolute():
            return str((folder / value).resolve())
        return value

    data = copy.deepcopy(data)
    for section, key in _PATH_KEYS:
        node = data if section is None else data.get(section)
        if isinstance(node, dict) and key in node:
            node[key] = absolute(node[key])
    sources = data["data"].get("sources") if isinstance(data.get("data"), dict) else None
    for source in sources if isinstance(sources, list) else []:
        for key in ("path", "val_path"):
            if isinstance(source, dict) and key in source:
                source[key] = absolute(source[key])
    cfg = data.get("cfg")
    if isinstance(cfg, str) and (folder / cfg).is_file():  # otherwise a bundled name
        data["cfg"] = absolute(cfg)
    return data


def _section(model: type[BaseModel], key: str) -> Optional[type[BaseModel]]:
    """The config section (a model of its own, e.g. `optim`) that `key` holds in `model`, if it holds one."""
    field = model.model_fields.get(key)
    for candidate in (field.annotation, *typing.get_args(field.annotation)) if field else ():
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _merged(base: dict, data: dict, model: type[BaseModel] = TrainConfig) -> dict:
    """`data` over `base`: sections merge key by key, any other value replaces the base's."""
    merged = dict(base)
    for key, value in data.items():
        section = _section(model, key)
        if section is not None and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value, section)
        else:
            merged[key] = value
    return merged


def _read_config(path: pathlib.Path, chain: tuple[pathlib.Path, ...] = ()) -> object:
    """A config file's mapping with its `base` chain merged under it: the inherited paths made absolute against
    the file that gives each, this file's own left as written."""
    data = read_yaml(path)
    if not isinstance(data, dict) or data.get("base") is None:
        return data
    base = data["base"]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: a training config's path, not {base!r}")
    chain = (*chain, path.resolve())
    base_path = (path.parent / base).resolve()
    if base_path in chain:
        names = " -> ".join(str(p) for p in (*chain, base_path))
        raise ConfigError(f"{path}: base: {base} leads back to itself ({names})")
    if not base_path.is_file():
        raise ConfigError(f"{path}: base: {base_path}: no such file")
    inherited = _read_config(base_path, chain)
    if not isinstance(inherited, dict):
        raise ConfigError(f"{path}: base: {base_path} is not a mapping of training keys")
    inherited = _with_absolute_paths(inherited, base_path.parent)
    inherited.pop("out", None)  # each file's runs are its own
    return _merged(inherited, data)


def load_train_config(path: Union[str, pathlib.Path], overrides: Optional[dict] = None) -> TrainConfig:
    """The config of a YAML file with its `base` chain, and `overrides` (dotted keys, as `inspector train --set`
    gives them) applied before validation; relative paths are relative to the file, overridden ones too."""
    path = pathlib.Path(path)
    if overrides and "base" in overrides:
        raise ConfigError(f"{path}: override base: a base is read with the file; give it there, not with --set")
    data = _read_config(path)
    if isinstance(data, dict):
        data = with_overrides(data, overrides or {}, str(path))
        data.setdefault("out", TrainConfig.model_fields["out"].default)  # beside the file, as any `out`
        data = _with_absolute_paths(data, path.parent.resolve())
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_errors(str(path), exc)) from None
