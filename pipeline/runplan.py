"""One run, read and checked once: what `run` starts, `validate` checks and a SIGHUP reload asks about.

A daemon config becomes one typed RunPlan (pipeline/devices/base.py): the model specs, the graph the MindX SDK
receives (rendered from the config, or the user's own pipeline.json), its one reading (pipeline/graph.py
GraphReading) and the settings the graph cannot carry. Every check runs here, once, and each problem names its key
or file: the config against the models (gears, classes, thresholds, the second stage), the files (preflight),
the cameras' codecs, the graph against the config, the models and the device that will run it. The device then
only checks what it alone can see (an NPU, an OM's owner) and starts the streams from the plan.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import List, Optional, Tuple

from models.errors import ModelError
from models.spec import ModelSpec
from pipeline.codecs import resolve_codecs
from pipeline.config import ConfigError, DaemonConfig
from pipeline.devices.base import CameraSettings, DeviceSettings, RunPlan
from pipeline.graph import check_config_against_model, read_graph, reading_problems, reading_warnings, render_graph
from pipeline.preflight import preflight
from pipeline.stage2 import class_names, device_stage2, load_stage2

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Findings:
    """What the checks found: problems keep the daemon from starting; warnings and notes are said and pass."""

    problems: List[str] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)
    # A camera whose stream its decoder cannot take: `validate` fails on it; `run` says it and starts, and that
    # camera fails alone when it opens (it may be fixed at the camera meanwhile).
    codec_problems: List[str] = dataclasses.field(default_factory=list)


def load_specs(config: DaemonConfig, source: str = "config",
               problems: Optional[List[str]] = None) -> Tuple[ModelSpec, Optional[ModelSpec]]:
    """The model's spec and the second stage's (None without one), checked against the config. Disagreements
    raise a ConfigError, or are appended to `problems` when a list is given (validate reports everything)."""
    try:
        spec = ModelSpec.load(config.model)
    except ModelError as exc:
        raise ConfigError(f"{source}: model: {exc}") from exc
    spec2, found = load_stage2(config, spec, source)
    found = check_config_against_model(config, spec, source, class_names(spec, spec2)) + found
    if found and problems is None:
        raise ConfigError("\n".join(found))
    if problems is not None:
        problems += found
    return spec, spec2


def device_settings(config: DaemonConfig, spec: ModelSpec, spec2: Optional[ModelSpec] = None) -> DeviceSettings:
    return DeviceSettings(
        cameras=tuple(CameraSettings(c.id, c.effective_mode, c.max_frames, c.loop, c.rate_fps, c.no_frame_timeout_s,
                                     c.reconnect_max_s) for c in config.cameras),
        max_batch=config.batching.max_batch, in_flight=config.batching.in_flight,
        live_queue=config.effective_live_queue,
        threads=config.batching.threads,
        stage2=device_stage2(config, spec, spec2) if spec2 is not None else None)


def check_run(config: DaemonConfig, source: str = "config", graph: Optional[dict] = None,
              graph_source: str = "rendered graph", *, ask_cameras: Optional[bool] = None,
              for_mock: bool = False) -> Tuple[Optional[RunPlan], DaemonConfig, Findings]:
    """Every check of a start, every problem reported (not the first). Returns the plan (None when a problem
    stands in the way), the config with the cameras' codecs resolved, and the findings. The cameras are asked
    for their codecs when `ask_cameras` (default: when there is no `graph`: the rendered graph names each
    decoder's). `for_mock`: also what the mock device cannot emulate, whatever the config's device."""
    found = Findings()
    try:
        spec, spec2 = load_specs(config, source, found.problems)
    except ConfigError as exc:  # no model: the graph can still be read on its own
        found.problems.append(str(exc))
        spec = spec2 = None
    if spec is not None:
        found.problems += preflight(config, spec, source)
    if ask_cameras if ask_cameras is not None else graph is None:
        resolution = resolve_codecs(config, source)
        config = resolution.config
        found.notes += resolution.notes
        found.warnings += resolution.warnings
        found.codec_problems += resolution.problems
    if graph is None:
        if spec is None:
            return None, config, found
        graph = render_graph(config, spec)
    streams, structure = read_graph(graph, graph_source)  # the graph's one reading
    found.problems += structure
    if streams is not None:
        found.problems += reading_problems(streams, graph_source, spec=spec, config=config,
                                        for_mock=for_mock or config.device == "mock", device=config.device)
        found.warnings += reading_warnings(streams, graph_source)
        if (config.samples.enabled and config.device == "ascend" and config.stage2 is None
                and streams.decoded_picture_key is None):
            found.warnings.append(f"{graph_source}: samples.enabled: element {streams.resize!r} reads `auto`, so the "
                                  f"Ascend device has no key to ask the decoded picture by and keeps no frame; "
                                  f"name its dataSource (the rendered graph names mxpi_parallel2serial0)")
    if found.problems or streams is None or spec is None:
        return None, config, found
    return (RunPlan(config.device, graph, streams, spec, device_settings(config, spec, spec2), spec2), config,
            found)


def plan_run(config: DaemonConfig, source: str = "config", graph: Optional[dict] = None) -> Tuple[RunPlan,
                                                                                                   DaemonConfig]:
    """The plan of a start and the config it was made from (the cameras' codecs resolved); every problem at
    once in one ConfigError. Notes and warnings are logged."""
    plan, config, found = check_run(config, source, graph, "pipeline.json")
    for note in found.notes:
        logger.info("%s", note)
    for warning in found.warnings:
        logger.warning("%s", warning)
    for problem in found.codec_problems:
        logger.error("%s", problem)
    if plan is None:
        raise ConfigError("\n".join(found.problems))
    return plan, config
