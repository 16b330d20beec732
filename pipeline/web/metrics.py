"""Prometheus metrics (prometheus-client), in a registry of the daemon's own.

Per-camera counters are read from the device's counters at scrape time (one source of truth, nothing counted
twice); latencies are histograms observed per frame by the daemon. Labels are camera ids and sink names only,
never URLs, so no credential can reach a metric.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pipeline.types import CameraStats

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
CAMERA_COUNTERS = {
    "frames_in": "Frames decoded.",
    "processed": "Frames inferred and written out.",
    "dropped": "Frames dropped because the model fell behind (live cameras keep the newest).",
    "skipped": "Frames passed over by frame_skip.",
    "reconnects": "Reconnections after a stream ended, stalled or failed.",
    "errors": "Connection and decode errors.",
}


class StatsCollector:
    def __init__(self, cameras: Callable[[], list[CameraStats]], camera_health: Callable[[], dict[str, bool]],
                 outputs: Callable[[], list[dict]], outbox_dropped: Callable[[], dict[str, int]],
                 device_lost: Callable[[], int] = lambda: 0, keeping: Callable[[], dict] = dict):
        self.cameras, self.camera_health, self.outputs = cameras, camera_health, outputs
        self.outbox_dropped = outbox_dropped
        self.device_lost = device_lost
        self.keeping = keeping  # decisions sent and samples kept (OutputStage.keeping)

    def collect(self):
        stats = self.cameras()
        for field, help_text in CAMERA_COUNTERS.items():
            family = CounterMetricFamily(f"inspector_camera_{field}", help_text, labels=["camera"])
            for s in stats:
                if s.value(field) is not None:  # a counter the device cannot measure is absent, not 0
                    family.add_metric([s.camera_id], s.value(field))
            yield family
        up = GaugeMetricFamily("inspector_camera_up", "1 while the camera delivers frames (not degraded).",
                               labels=["camera"])
        for camera, healthy in self.camera_health().items():
            up.add_metric([camera], 1.0 if healthy else 0.0)
        yield up
        outputs = self.outputs()
        backlog = GaugeMetricFamily("inspector_outbox_backlog", "Messages waiting in the outbox per output.",
                                    labels=["sink"])
        delivered = CounterMetricFamily("inspector_output_delivered", "Messages delivered per output.",
                                        labels=["sink"])
        failures = CounterMetricFamily("inspector_output_failures", "Failed delivery attempts per output.",
                                       labels=["sink"])
        for o in outputs:
            backlog.add_metric([o["sink"]], o["backlog"])
            delivered.add_metric([o["sink"]], o["delivered"])
            failures.add_metric([o["sink"]], o["failures"])
        dropped = CounterMetricFamily("inspector_outbox_dropped", "Undelivered messages dropped at the outbox "
                                      "limit.", labels=["kind"])
        for kind, count in self.outbox_dropped().items():
            dropped.add_metric([kind], count)
        lost = CounterMetricFamily("inspector_device_lost_frames", "Frames the device took in but could not "
                                   "hand out (an upstream element failed on them).")
        lost.add_metric([], self.device_lost())
        yield from (backlog, delivered, failures, dropped, lost)
        keeping = self.keeping()
        if "reviews" in keeping:
            reviews = CounterMetricFamily("inspector_reviews", "A person's decisions on events, sent to the "
                                          "outputs, by state (confirmed, false_alarm, open).", labels=["state"])
            for state, count in keeping["reviews"].items():
                reviews.add_metric([state], count)
            yield reviews
        if "samples" in keeping:
            samples = keeping["samples"]
            kept = CounterMetricFamily("inspector_samples_kept", "Frames kept to label, by reason.",
                                       labels=["reason"])
            for reason, count in samples["kept"].items():
                kept.add_metric([reason], count)
            deleted = CounterMetricFamily("inspector_samples_deleted", "Kept frames deleted by the quota.")
            deleted.add_metric([], samples["deleted"])
            skipped = CounterMetricFamily("inspector_samples_skipped", "Frames due to be kept but not (the disk "
                                          "short of space or refusing).")
            skipped.add_metric([], samples["skipped"])
            yield from (kept, deleted, skipped)


class Metrics:
    def __init__(self, collector: StatsCollector):
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self.decode = Histogram("inspector_decode_seconds", "Decode and colour conversion time per frame.",
                                ["camera"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.inference = Histogram("inspector_inference_seconds", "Inference time of the batch a frame ran in.",
                                   ["camera"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.latency = Histogram("inspector_latency_seconds", "From a frame's arrival to its output.",
                                 ["camera"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.batch_fill = Histogram("inspector_batch_fill_ratio", "Frames in a frame's batch / max_batch.",
                                    registry=self.registry, buckets=(0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0))
        self.events = Counter("inspector_events", "Events by camera and type (start, update, end).",
                              ["camera", "type"], registry=self.registry)
        self.crops_skipped = Counter("inspector_crops_skipped", "Second-stage crops not examined: beyond "
                                     "stage2.max_crops, or lost on the device.", ["camera"], registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
