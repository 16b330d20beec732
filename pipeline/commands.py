"""`inspector run | validate | render`: the daemon's commands."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import sys
import tempfile
import threading
from typing import List

from core.cliargs import non_negative_float, positive_float, positive_int
from core.errors import ConfigError

logger = logging.getLogger(__name__)


def register(commands) -> None:
    run = commands.add_parser("run", help="run the stream daemon (no arguments: the bundled demo on the mock)")
    run.add_argument("--config", help="daemon config (YAML); default: the embedded demo")
    run.add_argument("--graph", help="a hand-edited pipeline.json to run instead of the rendered one")
    run.add_argument("--device", choices=("mock", "ascend"), help="override the config's device")
    run.add_argument("--duration", type=positive_float, help="stop after this many seconds (drains, then exits)")
    run.add_argument("--output", help="override the output directory")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check a config and/or a graph without starting anything")
    validate.add_argument("--config", help="daemon config (YAML)")
    validate.add_argument("--graph", help="pipeline.json to check (against --config when given)")
    validate.add_argument("--mock", action="store_true", help="also refuse plugins the mock device cannot run")
    validate.add_argument("--device", choices=("mock", "ascend"),
                          help="check for this device (default: the config's): ascend runs the Ascend device's own "
                               "start-up checks on the graph (one mxpi_tensorinfer, no file sources, an appsink)")
    validate.set_defaults(handler=_validate)

    doctor = commands.add_parser("doctor", help="what this machine has and which device the daemon would use")
    doctor.add_argument("--require", choices=("ascend", "mock"),
                        help="exit 1 unless this device can run here (install checks)")
    doctor.add_argument("--ascend-home", default="/usr/local/Ascend", help="where CANN is installed")
    doctor.add_argument("--config", help="require the device this daemon config uses")
    doctor.set_defaults(handler=_doctor)

    health = commands.add_parser("health", help="exit 0 when the daemon of a config reports healthy")
    health.add_argument("--config", required=True)
    health.add_argument("--max-age", type=positive_float, default=10.0, help="seconds a status.json may be old")
    health.set_defaults(handler=_health)

    bench = commands.add_parser("bench", help="daemon throughput, efficiency, naive baseline, latency, memory")
    bench.add_argument("--model", help="exported or converted model directory (default: the demo model)")
    bench.add_argument("--cfg", help="instead of --model: export this network (yolov4, yolov4-tiny, a cfg file) "
                                     "with deterministic random weights (speed does not depend on the values)")
    bench.add_argument("--size", type=positive_int, default=416, help="input size for --cfg (default 416)")
    bench.add_argument("--resolution", help="re-encode the clips to WxH first (e.g. 1920x1080: decoding's share "
                                            "of the CPU at camera resolution)")
    bench.add_argument("--arrangements", default="1x2,2x1,2x2,4x1",
                       help="inference sessions x threads each, measured side by side (default 1x2,2x1,2x2,4x1)")
    bench.add_argument("--clips", help="comma-separated video files (default: ../shared/videos, else the demo clip)")
    bench.add_argument("--cameras", default="1,2,4,8", help="camera counts (default 1,2,4,8)")
    bench.add_argument("--batch", type=positive_int, default=4, help="max batch (a gear of the model)")
    bench.add_argument("--in-flight", type=positive_int, default=2, help="batches inferred side by side")
    bench.add_argument("--seconds", type=positive_float, default=20.0, help="measurement time per case")
    bench.add_argument("--soak-seconds", type=non_negative_float, default=180.0, help="memory soak at full load")
    bench.add_argument("--json", help="write the figures here")
    bench.add_argument("--plot", help="write a PNG plot here")
    bench.add_argument("--host-only", action="store_true",
                       help="only the host's per-frame work after the device (detections, JSON line, outbox, events, "
                            "metrics) on synthetic model outputs: frames/s and us per frame per stage")
    bench.add_argument("--detections", default="0,5,50", help="--host-only: detections per frame (default 0,5,50)")
    bench.add_argument("--frames", type=positive_int, default=4000, help="--host-only: frames per case (default 4000)")
    bench.add_argument("--stage2", help="only the daemon's frames/s without and with this second-stage model, side "
                                        "by side per camera count (default clip: the demo clip)")
    bench.set_defaults(handler=_bench)

    render = commands.add_parser("render", help="render the MindX pipeline.json for a config")
    render.add_argument("--config", required=True)
    render.add_argument("--out", help="write here instead of standard output")
    render.add_argument("--relative-to", help="write paths under this directory relative to it (the repository's "
                                              "pipeline.json: `--config pipeline/demo/demo.yaml --relative-to .`)")
    render.set_defaults(handler=_render)


    samples = commands.add_parser("samples", help="the frames a daemon kept to label (samples.enabled)")
    actions = samples.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write the kept frames with the models' predictions as pre-labels "
                                               "(false alarms with their boxes removed), for CVAT or Label Studio "
                                               "and as a source of `inspector train`")
    export.add_argument("--config", help="the daemon's config: its samples folder and review index")
    export.add_argument("--samples", help="instead of --config: a samples folder (copied off a box)")
    export.add_argument("--review", help="with --samples: the daemon's events.sqlite (the decisions)")
    export.add_argument("--out", required=True, help="an empty or new folder")
    export.add_argument("--format", choices=("coco", "voc", "yolo"), default="coco", help="default: coco")
    export.add_argument("--reasons", default="event,uncertain,random",
                        help="which kept frames (default: event,uncertain,random)")
    export.set_defaults(handler=_samples_export)


def _samples_export(args) -> int:
    from pipeline.config import load_config
    from pipeline.outputs.samples import REASONS
    from pipeline.outputs.stage import REVIEW_FILE
    from pipeline.tools.samples_export import SamplesError, export

    if (args.config is None) == (args.samples is None):
        raise SamplesError("give --config (the daemon's) or --samples (a folder), one of them")
    if args.config:
        config = load_config(args.config)
        out_dir = pathlib.Path(config.output.directory)
        folder = pathlib.Path(config.samples.directory or out_dir / "samples")
        review = out_dir / REVIEW_FILE
    else:
        folder, review = pathlib.Path(args.samples), args.review and pathlib.Path(args.review)
    reasons = [r.strip() for r in args.reasons.split(",") if r.strip()]
    unknown = sorted(set(reasons) - set(REASONS))
    if unknown:
        raise SamplesError(f"--reasons: {unknown[0]!r} is not one of {', '.join(REASONS)}")
    summary = export(folder, review, pathlib.Path(args.out), args.format, reasons)
    print(json.dumps(summary, indent=2))
    return 0


def _load(args):
    from pipeline.config import load_config
    from pipeline.demo import demo_config

    if args.config:
        config = load_config(args.config)
    else:
        config = demo_config(args.output or "inspector-out")
        logger.info("no --config: running the embedded demo (bundled clip, mock device), output in %s",
                    config.output.directory)
    updates = {}
    if getattr(args, "device", None):
        updates["device"] = args.device
    if getattr(args, "output", None) and args.config:
        updates["output"] = config.output.model_copy(update={"directory": str(pathlib.Path(args.output).resolve())})
    return config.model_copy(update=updates) if updates else config


def _run(args) -> int:
    from pipeline.daemon import Daemon
    from pipeline.graph import load_graph

    config = _load(args)
    graph = load_graph(args.graph) if args.graph else None
    daemon = Daemon(config, graph=graph, source=args.config or "demo config")
    stop = threading.Event()
    signals = {"count": 0}

    def handle(signum, _frame):
        signals["count"] += 1
        if signals["count"] > 1:
            logger.error("second signal: exiting without draining")
            sys.exit(130)
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:  # reload (`systemctl reload`), checked off the signal handler
            signals["count"] -= 1
            threading.Thread(target=reload_if_valid, name="reload", daemon=True).start()
            return
        logger.info("%s: stopping after the frames in flight", name)
        signals["stopped_by"] = name
        stop.set()

    def reload_if_valid():
        """Drain and start again with the config read again, unless the new config would not start: then the
        daemon runs on with the one it has (a reload never turns a running daemon into a stopped one)."""
        problems = _start_problems(args)
        if problems:
            logger.error("SIGHUP: not reloaded, running on with the config loaded at start; the new one would not "
                         "start:\n  %s", "\n  ".join(problems))
            return
        daemon.reloading = True
        signals["stopped_by"] = "SIGHUP"
        logger.info("SIGHUP: reloading: stopping after the frames in flight, then starting again")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handle)
    if args.duration:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    summary = daemon.run(stop)
    print(json.dumps(summary.to_dict(), indent=2))
    if daemon.reloading:
        _start_again()
    if not any(camera.frames_in for camera in summary.cameras):
        failed = ", ".join(f"{c.camera_id} ({c.state})" for c in summary.cameras)
        if "stopped_by" in signals:
            # An operator's stop (systemctl stop, Ctrl-C) is a clean stop even before the first frame, e.g. right
            # after a restart that only re-delivered the outbox; systemd would mark the unit failed on exit 1.
            logger.warning("stopped by %s before any camera delivered a frame: %s", signals["stopped_by"], failed)
            return 0
        # A run that ended on its own (files ended, --duration) with no frame did nothing: a script must see that.
        print(f"inspector run: error: no camera delivered a frame: {failed}", file=sys.stderr)
        return 1
    return 0


def _start_problems(args) -> List[str]:
    """What would keep `inspector run` with these arguments from starting (the config, its models, its files,
    its graph): the checks of a start, without asking the cameras again."""
    from pipeline.graph import load_graph
    from pipeline.runplan import check_run

    try:
        config = _load(args)
        graph = load_graph(args.graph) if args.graph else None
        return check_run(config, args.config or "demo config", graph, args.graph or "rendered graph",
                         ask_cameras=False)[2].problems
    except ConfigError as exc:
        return [str(exc)]


def _start_again() -> None:
    """Replace this process with a new `inspector run` of the same arguments: the config and models are read
    again, the outbox resumes, and the PID stays (systemd's main process). A new process, not a new Daemon in this
    one: the MindX SDK creates its streams once per process (api_Python.md "CreateMultipleStreams")."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "inspector"] + sys.argv[1:])


def _validate(args) -> int:
    from pipeline.config import load_config
    from pipeline.graph import graph_warnings, load_graph, validate_graph
    from pipeline.runplan import check_run

    if not args.config and not args.graph:
        print("inspector validate: give --config, --graph or both", file=sys.stderr)
        return 2
    problems: List[str] = []
    warnings: List[str] = []
    notes: List[str] = []
    config = None
    try:
        graph = load_graph(args.graph) if args.graph else None
        if args.config:
            config = load_config(args.config)
            if args.device:
                config = config.model_copy(update={"device": args.device})
            # The checks of a start, every problem reported; the cameras asked what they stream (the decoders).
            _, config, found = check_run(config, args.config, graph, args.graph or "rendered graph",
                                         ask_cameras=True, for_mock=args.mock)
            problems += found.problems + found.codec_problems
            warnings += found.warnings
            notes += found.notes
        else:
            problems += validate_graph(graph, args.graph, for_mock=args.mock, device=args.device)
            warnings += graph_warnings(graph, args.graph)
            if args.device is None and not args.mock:
                # A graph alone: its validity is the SDK's; whether inspector's devices run it is said apart.
                for name, kwargs in (("the mock device", {"for_mock": True}), ("the Ascend device",
                                                                                {"device": "ascend"})):
                    extra = [p for p in validate_graph(graph, args.graph, **kwargs) if p not in problems]
                    print(f"inspector on {name}: " + ("can run it" if not extra else
                                                      "cannot run it:\n  " + "\n  ".join(extra)))
    except ConfigError as exc:
        problems.append(str(exc))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("valid" if config is not None or args.mock or args.device else "valid for the MindX SDK")
    return 1 if problems else 0


def _render(args) -> int:
    from pipeline.codecs import resolve_codecs
    from pipeline.config import load_config
    from pipeline.graph import graph_json, render_graph
    from pipeline.runplan import load_specs

    config = load_config(args.config)
    spec, _ = load_specs(config, args.config)
    # The graph is for a box whose decoders take what the graph says: every codec known, none contradicted.
    codecs = resolve_codecs(config, args.config)
    refused = codecs.problems + [
        f"{args.config}: cameras[{i}] ({c.id}).codec: auto, and the camera could not be asked "
        f"({f.reason}): set codec: h264 or h265 for it (the graph must name what its decoder decodes)"
        for i, (c, f) in enumerate(zip(config.cameras, codecs.findings)) if c.id in codecs.unresolved]
    if refused:
        print("inspector render: error: not rendered:\n  " + "\n  ".join(refused), file=sys.stderr)
        return 1
    for note in codecs.notes:
        print(f"note: {note}", file=sys.stderr)
    text = graph_json(render_graph(codecs.config, spec))
    if args.relative_to:
        text = text.replace(str(pathlib.Path(args.relative_to).resolve()) + "/", "")
    if args.out:
        pathlib.Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _doctor(args) -> int:
    from pipeline.tools.doctor import report

    result = report(args.ascend_home)
    print(json.dumps(result, indent=2))
    if args.config and not args.require:
        from pipeline.config import load_config

        args.require = load_config(args.config).device
    if args.require == "ascend" and result["daemon_device"] != "ascend":
        print(f"inspector doctor: the Ascend device cannot run here: {result['why']}", file=sys.stderr)
        return 1
    if args.require == "mock" and not result["cpu_runtimes"]:
        print("inspector doctor: no CPU runtime (onnxruntime or mindspore) is installed", file=sys.stderr)
        return 1
    return 0


def _health(args) -> int:
    import time

    from pipeline.config import load_config
    from pipeline.daemon import STATUS_FILE

    path = pathlib.Path(load_config(args.config).output.directory) / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {path}: {exc}", file=sys.stderr)
        return 1
    age = time.time() - float(status.get("time", 0))
    if status.get("state") != "running" or age > args.max_age:
        print(f"unhealthy: state {status.get('state')!r}, status {age:.0f} s old ({path})", file=sys.stderr)
        return 1
    # Healthy means delivering: at least one camera has had frames through the model.
    if not any(c.get("processed", 0) > 0 for c in status.get("cameras", [])):
        print(f"unhealthy: running, but no camera has delivered a processed frame yet ({path})", file=sys.stderr)
        return 1
    print(json.dumps(status))
    return 0


def _bench(args) -> int:
    """Three benchmarks behind one command: the daemon (default), the host's share alone (--host-only), the
    cascade against the single stage (--stage2)."""
    if args.host_only and args.stage2:
        raise ConfigError("bench: --host-only and --stage2 are different benchmarks: give one")
    if args.host_only:
        return _bench_host(args)
    if args.stage2:
        return _bench_cascade(args)
    return _bench_daemon(args)


def _write_json(path, report: dict) -> None:
    if path:
        pathlib.Path(path).write_text(json.dumps(report, indent=2), encoding="utf-8")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _bench_host(args) -> int:
    from pipeline.demo import demo_model_dir
    from pipeline.tools.hostbench import format_host_report, run_host_bench

    model = pathlib.Path(args.model) if args.model else demo_model_dir()
    report = run_host_bench(model, [int(c) for c in args.cameras.split(",")],
                            [int(d) for d in args.detections.split(",")], args.frames)
    print(format_host_report(report))
    _write_json(args.json, report)
    return 0


def _bench_cascade(args) -> int:
    from pipeline.tools.bench import format_cascade_report, run_cascade_bench
    from pipeline.demo import DEMO_DIR, demo_model_dir

    clips = [pathlib.Path(c) for c in args.clips.split(",")] if args.clips else [DEMO_DIR / "insulators.mp4"]
    report = run_cascade_bench(pathlib.Path(args.model) if args.model else demo_model_dir(),
                               pathlib.Path(args.stage2), clips, [int(c) for c in args.cameras.split(",")],
                               args.batch, args.in_flight, args.seconds, progress=_progress)
    print(format_cascade_report(report))
    _write_json(args.json, report)
    return 0


def _bench_daemon(args) -> int:
    from pipeline.tools.bench import format_report, plot_report, run_bench
    from pipeline.demo import DEMO_DIR, demo_model_dir

    if args.cfg:
        from pipeline.tools.bench import synthetic_model

        model = synthetic_model(args.cfg, args.size, pathlib.Path(tempfile.mkdtemp(prefix="inspector-bench-model-")))
    else:
        model = pathlib.Path(args.model) if args.model else demo_model_dir()
    if args.clips:
        clips = [pathlib.Path(c) for c in args.clips.split(",")]
    else:
        shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "videos"
        clips = sorted(shared.glob("*.mp4")) or [DEMO_DIR / "insulators.mp4"]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        print(f"inspector bench: no such clip: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.resolution:
        from pipeline.tools.bench import rescale_clip

        width, height = (int(v) for v in args.resolution.lower().split("x"))
        directory = pathlib.Path(tempfile.mkdtemp(prefix="inspector-bench-clips-"))
        clips = [rescale_clip(c, directory / f"{c.stem}-{width}x{height}.mp4", width, height) for c in clips]
    cameras = [int(c) for c in args.cameras.split(",")]
    arrangements = [tuple(int(v) for v in a.split("x")) for a in args.arrangements.split(",") if a]
    report = run_bench(model, clips, cameras, args.batch, args.in_flight, args.seconds, args.soak_seconds,
                       progress=_progress, arrangements=arrangements,
                       # Random weights score every anchor near 0.3: at the daemon's 0.3 they would flood NMS,
                       # the tracker and the snapshots with boxes no real model produces.
                       score_threshold=0.6 if args.cfg else 0.3)
    print(format_report(report))
    _write_json(args.json, report)
    if args.plot:
        plot_report(report, args.plot)
    return 0
