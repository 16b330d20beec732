"""The second stage on the host (docs/cascade.md): its model checked against the config and the first model, the
rule a config deploys (models/cascade.py), the class list the daemon reports, and each frame's crop outputs
turned into detections in camera pixels, each with the first-stage object it was found in.

The class list is the first model's classes followed by the second model's that the first does not have. A
class both models have (the demo's `defect`, the field model's defects) is reported in the second model's
place: by default (`stage2.shared_classes: merge`) the first model's detections of it join the second's, above
the second's threshold, one NMS over both, so a defect outside every crop or missed in its crop is still
reported and one both found is reported once (docs/cascade.md, "Classes both models detect");
`second` reports it from the second model only.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from models.cascade import CascadeRule, CropPlan, Decoding, children, merge_first, shared_pairs
from models.errors import ModelError
from models.spec import ModelSpec
from pipeline.config import DaemonConfig
from pipeline.devices.base import Stage2Settings
from pipeline.postprocess import decoding, unknown_threshold_classes
from pipeline.preflight import model_file_problems
from pipeline.types import Detections, FrameResult


def load_stage2(config: DaemonConfig, spec1: ModelSpec, source: str = "config") -> Tuple[Optional[ModelSpec],
                                                                                          List[str]]:
    """The second model's spec (None without one) and every problem with it, each naming the key."""
    stage2 = config.stage2
    if stage2 is None:
        return None, []
    try:
        spec2 = ModelSpec.load(stage2.model)
    except ModelError as exc:
        return None, [f"{source}: stage2.model: {exc}"]
    problems = []
    if spec2.crops is None:
        problems.append(f"{source}: stage2.model: {stage2.model} is not a second-stage model (its manifest has no "
                        "crops): train it with data.crops (train/configs/demo-defect-stage2.yaml)")
        return spec2, problems
    for name in stage2.parents or spec2.crops["parents"]:
        if name not in spec1.class_names:
            problems.append(f"{source}: stage2.parents: {name!r} is not a class of the first model "
                            f"({', '.join(spec1.class_names)})")
    untrained = [p for p in stage2.parents or [] if p not in spec2.crops["parents"]]
    if untrained:  # a subset is fine (crop only some of them); another class, the model has never seen
        problems.append(f"{source}: stage2.parents: {untrained} were not cropped in the second model's training "
                        f"(it was trained on crops of {spec2.crops['parents']})")
    problems += unknown_threshold_classes(stage2.thresholds, spec2, f"{source}: stage2.thresholds",
                                          "the second model")
    # Checksums always; loading the CPU model only when nothing else is wrong and the mock device will run it.
    problems += [f"{source}: stage2.model: {p}"
                 for p in model_file_problems(stage2.model, spec2, None if problems else config.device)]
    return spec2, problems


def class_names(spec1: ModelSpec, spec2: Optional[ModelSpec]) -> Tuple[str, ...]:
    """What the daemon reports: the first model's classes, then the second's it does not have."""
    if spec2 is None:
        return tuple(spec1.class_names)
    return tuple(spec1.class_names) + tuple(n for n in spec2.class_names if n not in spec1.class_names)


def cascade_rule(config: DaemonConfig, spec1: ModelSpec, spec2: ModelSpec) -> CascadeRule:
    """The cascade a daemon config deploys: the parents (stage2.parents, or the classes the second model was
    trained on crops of), both stages' decoding (`thresholds`, `stage2.thresholds`) and max_crops. The devices
    apply it and `inspector eval --config` measures it."""
    parents = config.stage2.parents or spec2.crops["parents"]
    merged = shared_pairs(spec1, spec2) if config.stage2.shared_classes == "merge" else ()
    return CascadeRule(tuple(spec1.class_names.index(p) for p in parents), decoding(spec1, config.thresholds),
                       decoding(spec2, config.stage2.thresholds), config.stage2.max_crops, merged)


def device_stage2(config: DaemonConfig, spec1: ModelSpec, spec2: ModelSpec) -> Stage2Settings:
    return Stage2Settings(config.stage2.model, cascade_rule(config, spec1, spec2))


def deployed_models(config_path: str) -> Tuple[str, Decoding, Optional[str], Optional[CascadeRule]]:
    """What a daemon config deploys, for `inspector eval --config`: (first model directory, its decoding under the
    config's `thresholds`, second model directory or None, the cascade rule or None). Every problem of its second
    stage is an error naming the key."""
    from core.errors import ConfigError
    from pipeline.config import load_config

    config = load_config(config_path)
    try:
        spec1 = ModelSpec.load(config.model)
    except ModelError as exc:
        raise ConfigError(f"{config_path}: model: {exc}") from None
    spec2, problems = load_stage2(config, spec1, config_path)
    problems += unknown_threshold_classes(config.thresholds, spec1, f"{config_path}: thresholds", "the model")
    if problems:
        raise ConfigError("\n".join(problems))
    if spec2 is None:
        return config.model, decoding(spec1, config.thresholds), None, None
    rule = cascade_rule(config, spec1, spec2)
    return config.model, rule.stage1, config.stage2.model, rule


@dataclasses.dataclass(frozen=True)
class Cascade:
    """The host's view of a second stage: its decoding and the class mapping, computed once."""

    spec1: ModelSpec
    spec2: ModelSpec
    names: Tuple[str, ...]
    stage2_ids: np.ndarray  # second-model class -> reported class
    replaced: np.ndarray  # first-model classes reported in the second model's place
    rule: CascadeRule  # the second model's decoding, and which first-stage detections join its own

    @classmethod
    def create(cls, config: DaemonConfig, spec1: ModelSpec, spec2: ModelSpec) -> "Cascade":
        names = class_names(spec1, spec2)
        return cls(spec1, spec2, names, np.asarray([names.index(n) for n in spec2.class_names], np.int64),
                   np.asarray([i for i, _ in shared_pairs(spec1, spec2)], np.int64),
                   cascade_rule(config, spec1, spec2))

    def combine(self, first: Detections, result: FrameResult) -> Detections:
        """The first stage's detections (minus the classes the second reports) followed by the second's, in
        camera pixels, each second-stage detection with the index of its parent in the returned list (-1: a
        first-stage detection of a shared class, merged). `first` is the list the device planned the crops on
        (FrameResult.stage1), so a crop's parent index is exact."""
        plans = [CropPlan(crop.rect_camera, crop.parent, crop.geometry) for crop in result.crops]
        found = children(plans, [crop.tensors[:2] for crop in result.crops], self.rule.stage2)
        boxes2, scores2, ids2, parents = merge_first(found, first.boxes_xyxy_camera, first.scores,
                                                     first.class_ids, self.rule)
        keep = ~np.isin(first.class_ids, self.replaced)
        # The parents' indices in the kept list (a parent of a replaced class is none; it cannot be one with
        # the checks in load_stage2, but the mapping must not point at another object if it were).
        renumbered = np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int64)
        parents = np.where(parents >= 0, renumbered[np.maximum(parents, 0)], -1) if len(parents) else parents
        return Detections(np.concatenate([first.boxes_xyxy_camera[keep], boxes2]).astype(np.float32),
                          np.concatenate([first.scores[keep], scores2]).astype(np.float32),
                          np.concatenate([first.class_ids[keep], self.stage2_ids[ids2]]).astype(np.int64),
                          np.concatenate([np.full(int(keep.sum()), -1, np.int64), parents]))
