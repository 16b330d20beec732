"""The transfer-learning trainer: data, augmentation, loss, strategies, schedule, checkpoints, evaluation; one
run is a `Trainer` (its state, its steps, hooks for what happens around the epochs).

Graph mode with `nn.TrainOneStepCell` (about 3x faster than PyNative here). Every epoch ends with `last.ckpt`
(weights, optimiser state, epoch, best score): `inspector train --resume` continues from it. The best model by
mAP@0.5 on the held-out set is `best.ckpt` (network weights only, canonical names) and is exported at the end.
Each transfer-learning strategy is a config switch and is logged at start.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import pathlib
import queue
import re
import threading
import time

import cv2
import numpy as np
from tqdm import tqdm

from core.errors import ConfigError
from models import msenv  # noqa: F401
import mindspore as ms
from mindspore import nn

from models.darknet_cfg import backbone_end as cfg_backbone_end, parse_cfg
from models.network import DarknetYolo, DecodedYolo
from models.spec import ModelSpec
from models.weights import layer_of, load_weights, network_parameters, save_checkpoint
from models.letterbox import preprocess_bgr
from train.augment import AugmentConfig, flip_horizontal, hsv_jitter, mosaic, random_affine, rotate_quarter
from train.config import TrainConfig
from train.datasets import Dataset, keep_label_fraction, split_data
from train.evaluate import evaluate_sources, plot_pr, predict
from train.loss import L2SPLoss, YoloLoss
from train.targets import build_targets

logger = logging.getLogger(__name__)


# --- data -----------------------------------------------------------------------------------------------------
class BatchLoader:
    """Batches of (images, gt boxes, per-head targets), prepared on a background thread (bounded prefetch)."""

    def __init__(self, dataset: Dataset, spec: ModelSpec, config: TrainConfig, augment: bool, seed: int,
                 rank: int = 0, world: int = 1):
        self.dataset, self.spec, self.config, self.augment = dataset, spec, config, augment
        self.rng = np.random.default_rng(seed)  # the same on every rank: the shards below are disjoint
        self.rank, self.world = rank, world
        self.aug = AugmentConfig(**config.augment.model_dump())  # by name: a setting added to both cannot shift
        # Static shapes: the last partial batch is dropped. Data parallel: each rank takes every world-th image.
        self.steps = len(dataset.samples) // (config.batch_size * world)

    def _load(self, index: int):
        sample = self.dataset.samples[index]
        image = cv2.imread(sample.image)
        if image is None:
            raise FileNotFoundError(f"{sample.image}: cannot read image")
        return image, sample.boxes.copy(), sample.labels.copy()

    def _picture(self, index: int, rng):
        image, boxes, labels = self._load(index)
        # Drawn only when asked for, so configs without it keep their random stream (and their figures).
        if self.augment and self.aug.rotate90 and rng.random() < self.aug.rotate90:
            image, boxes = rotate_quarter(image, boxes, clockwise=bool(rng.random() < 0.5))
        return image, boxes, labels

    def _example(self, index: int, rng):
        if self.augment and rng.random() < self.aug.mosaic:
            others = rng.integers(0, len(self.dataset.samples), 3)
            size = (self.spec.input_height, self.spec.input_width)
            image, boxes, labels = mosaic([self._picture(index, rng)] + [self._picture(int(i), rng) for i in others],
                                          size, rng, self.aug)
        else:
            image, boxes, labels = self._picture(index, rng)
        if self.augment:
            image, boxes, labels = random_affine(image, boxes, labels, rng, self.aug)
            image = hsv_jitter(image, rng, self.aug)
            if rng.random() < self.aug.flip:
                image, boxes = flip_horizontal(image, boxes)
        # The same letterbox, colour order and normalisation as evaluation and the CPU runtime.
        tensor, geometry = preprocess_bgr(image, self.spec)
        if len(boxes):
            boxes = geometry.to_model(boxes)
        targets, gt = build_targets(boxes, labels, self.spec, self.config.loss.anchor_iou,
                                    self.config.loss.label_smoothing)
        return tensor, gt, targets

    def epoch(self):
        order = self.rng.permutation(len(self.dataset.samples)) if self.augment else \
            np.arange(len(self.dataset.samples))
        order = order[self.rank::self.world]
        out: "queue.Queue" = queue.Queue(maxsize=4)
        rng = np.random.default_rng(self.rng.integers(1 << 31) + self.rank)

        def produce():
            try:
                for step in range(self.steps):
                    items = [self._example(int(i), rng) for i in
                             order[step * self.config.batch_size:(step + 1) * self.config.batch_size]]
                    images = np.stack([i[0] for i in items]).astype(np.float32)
                    gts = np.stack([i[1] for i in items])
                    heads = [np.stack([i[2][h] for i in items]) for h in range(len(self.spec.heads))]
                    out.put((images, gts, heads))
            except Exception as exc:  # surfaced in the training loop
                out.put(exc)
            out.put(None)

        threading.Thread(target=produce, daemon=True, name="loader").start()
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item


# --- schedule and optimiser ---------------------------------------------------------------------------------
def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    return int(config.optim.warmup_epochs * steps_per_epoch)


def lr_schedule(config: TrainConfig, steps_per_epoch: int) -> np.ndarray:
    o = config.optim
    total = config.epochs * steps_per_epoch
    warm = warmup_steps(config, steps_per_epoch)
    lrs = np.empty(total, np.float64)
    for step in range(total):
        epoch = step / steps_per_epoch
        if step < warm:
            lrs[step] = o.lr  # ramped below
        elif o.schedule == "cosine":
            progress = (step - warm) / max(total - warm, 1)
            lrs[step] = o.lr * (o.final_lr_fraction + (1 - o.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))
        else:
            lrs[step] = o.lr * 0.1 ** sum(epoch >= s for s in o.steps)
    return rewarm(lrs, 0, warm).astype(np.float32)


def rewarm(lrs: np.ndarray, from_step: int, steps: int) -> np.ndarray:
    """The schedule with a linear warm-up from `from_step` over `steps`: the run's own warm-up from step 0, and
    again what layers released mid-run (staged unfreezing) train at. Released at the schedule's rate,
    pretrained layers take steps sized for a head that has already learnt: the loss quadrupled in the epoch
    after an unfreeze, tripled with the warm-up (docs/transfer.md, "Releasing the backbone")."""
    ramp = np.clip((np.arange(len(lrs)) - from_step + 1) / max(steps, 1), 0.0, 1.0)
    return (lrs * ramp).astype(lrs.dtype)


def make_optimizer(network: DarknetYolo, config: TrainConfig, lrs: np.ndarray, start_step: int = 0,
                   pulled: tuple = (), released: tuple[int, int, int] | None = None):
    """Parameter groups: weight decay on conv weights only (not BatchNorm, not biases, not the weights L2-SP
    pulls towards their pretrained values: `pulled`); the backbone (layers before `backbone_end`) at
    `backbone_lr_scale`; `released` = (layers, step, steps): the layers before `layers`, unfrozen at `step`,
    warm up again over `steps`."""
    o = config.optim
    end = backbone_end(network)
    groups: dict[tuple[bool, bool, bool], list] = {}
    for name, param in network_parameters(network).items():
        if not param.requires_grad:
            continue
        decay = name.endswith("conv.weight") and name not in pulled
        layer = layer_of(name)
        groups.setdefault((decay, layer < end, released is not None and layer < released[0]), []).append(param)
    params = []
    for (decay, backbone, warming), members in groups.items():
        group_lrs = lrs * (o.backbone_lr_scale if backbone else 1.0)
        if warming:
            group_lrs = rewarm(group_lrs, released[1], released[2])
        params.append({"params": members, "weight_decay": o.weight_decay if decay else 0.0,
                       "lr": ms.Tensor(group_lrs)})
    if o.optimizer in ("sgd", "nesterov"):
        optimizer = nn.Momentum(params, learning_rate=0.0, momentum=o.momentum,
                                use_nesterov=o.optimizer == "nesterov")
    elif o.optimizer == "adam":
        optimizer = nn.Adam(params, learning_rate=0.0, beta1=o.momentum)
    elif o.optimizer == "adamw":
        optimizer = nn.AdamWeightDecay(params, learning_rate=0.0, beta1=o.momentum)
    else:
        optimizer = nn.RMSProp(params, learning_rate=0.0, momentum=o.momentum)
    # The schedule is indexed by the optimiser's step: a rebuilt optimiser (staged unfreezing) continues it.
    optimizer.global_step.set_data(ms.Tensor(np.array([start_step], np.int32)))
    return optimizer


def backbone_end(network: DarknetYolo) -> int:
    """First layer index after the backbone (models.darknet_cfg.backbone_end)."""
    return cfg_backbone_end(network.cfg)


# --- strategies -------------------------------------------------------------------------------------------------
def freeze(network: DarknetYolo, layers: int, frozen: bool) -> int:
    count = 0
    for name, param in network_parameters(network).items():
        if layer_of(name) < layers:
            param.requires_grad = not frozen
            count += 1
    return count


def set_frozen_bn_eval(network: DarknetYolo, layers: int) -> None:
    """BatchNorm statistics of a frozen part must not move: those layers run in inference mode."""
    for index, cell in enumerate(network.layers):
        if index < layers:
            cell.set_train(False)


def reinitialise_head(network: DarknetYolo, seed: int) -> list[str]:
    """Fresh values for the class-dependent head convs (RIFLE, or a new class list)."""
    rng = np.random.default_rng(seed)
    names = []
    params = network_parameters(network)
    for index in network.cfg.class_dependent_convs:
        weight = params[f"layers.{index}.conv.weight"]
        fan_in = int(np.prod(weight.shape[1:]))
        bound = math.sqrt(6.0 / fan_in)  # HeUniform, as at construction
        weight.set_data(ms.Tensor(rng.uniform(-bound, bound, weight.shape).astype(np.float32)))
        bias = params.get(f"layers.{index}.conv.bias")
        if bias is not None:
            bias.set_data(ms.Tensor(np.zeros(bias.shape, np.float32)))
        names += [f"layers.{index}.conv.weight", f"layers.{index}.conv.bias"]
    return names


# --- the loop -------------------------------------------------------------------------------------------------
def log_issues(dataset: Dataset) -> None:
    """Every annotation problem, by file; objects of classes outside the class list (a deliberate subset,
    e.g. `defect` only) as one line per class instead of one per object."""
    left_out: collections.Counter = collections.Counter()
    for issue in dataset.issues:
        match = re.search(r"unknown class '([^']*)' \(left out\)", issue.problem)
        if match:
            left_out[match.group(1)] += 1
        else:
            logger.warning("data: %s", issue)
    for name, count in sorted(left_out.items()):
        logger.warning("data: %d objects of class %r, not in data.classes %s, left out", count, name,
                       list(dataset.class_names))


def prepare_data(config: TrainConfig) -> tuple[Dataset, Dataset]:
    if config.data.crops is not None:  # a second stage: crops around the parents, cut once (train/crop_sets.py)
        from train.crop_sets import build_crop_sets

        train_set, val_set = build_crop_sets(config)
        log_issues(train_set)
        check_training_data(train_set, config)
        return train_set, val_set
    train_set, val_set = split_data(config.data, config.data.classes)
    log_issues(train_set)
    if len(config.data.source_list()) > 1:
        for name, part in train_set.by_source().items():
            logger.info("data: source %s: %d training pictures %s", name, len(part.samples), part.counts())
    train_set, lines = keep_label_fraction(train_set, config.data.label_fraction, config.data.split_seed + 1)
    for line in lines:
        logger.info("data: %s", line)
    check_training_data(train_set, config)
    return train_set, val_set


def check_training_data(train_set: Dataset, config: TrainConfig) -> None:
    """A run that cannot learn is refused before it starts: no usable picture, fewer pictures than a batch, or a
    class the training pictures never show (a network cannot learn a class it never sees; often a class name
    that differs from the annotations')."""
    where = (f"data.path {config.data.path} ({config.data.format})" if config.data.path else
             f"data.sources {[source.name for source in config.data.sources]}")
    if not train_set.samples:
        raise ConfigError(f"{where}: no usable labelled training picture ({len(train_set.issues)} problems logged "
                          f"above): check the path and data.format")
    if len(train_set.samples) < config.batch_size:
        raise ConfigError(f"{where}: {len(train_set.samples)} training pictures are fewer than batch_size "
                          f"{config.batch_size}: lower batch_size or add pictures")
    counts = train_set.counts()
    absent = [name for name, count in counts.items() if count == 0]
    if absent:
        raise ConfigError(f"data.classes: {absent} have no object in the {len(train_set.samples)} training "
                          f"pictures ({counts}): check the class names against the annotations' (objects of "
                          f"other classes are listed above as left out)")


def evaluate_network(network: DarknetYolo, dataset: Dataset, spec: ModelSpec) -> dict:
    decoded = DecodedYolo(network)
    decoded.set_train(False)

    def run(images):
        boxes, scores = decoded(ms.Tensor(images))
        return boxes.asnumpy(), scores.asnumpy()

    metrics = evaluate_sources(dataset, predict(run, dataset, spec, batch=8))
    network.set_train(True)
    return metrics


def distributed_context() -> tuple[int, int]:
    """(rank, world size). Under MindSpore's launcher (`msrun`, which sets MS_WORKER_NUM) or a RANK_SIZE > 1
    environment, join the collective group and train data-parallel with averaged gradients."""
    world = int(os.environ.get("MS_WORKER_NUM") or os.environ.get("RANK_SIZE") or 1)
    if world <= 1:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return get_rank(), get_group_size()


EVENTS = ("on_train_start", "on_epoch_end", "on_evaluated", "on_best", "on_train_end")


class Trainer:
    """One training run: its data, network, schedule and state, and the steps `fit` takes. What happens around
    the epochs is hooks (`add_callback(event, fn)`, each called with the trainer and the event's record):

    - on_train_start(trainer, None): the strategies are set, the epochs about to run;
    - on_evaluated(trainer, metrics): a held-out evaluation (eval_every);
    - on_best(trainer, metrics): it beat every earlier one (default: best.ckpt and pr.png);
    - on_epoch_end(trainer, record): the epoch's record, complete (default: metrics.jsonl, last.ckpt,
      curves.png, the log line; a resumed run reads the first two);
    - on_train_end(trainer, summary): the best model exported.

    Only rank 0 of a distributed run evaluates and runs the hooks."""

    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.out = pathlib.Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        ms.set_context(mode=ms.GRAPH_MODE)
        self.rank, self.world = distributed_context()
        if self.world > 1:
            logger.info("data parallel: rank %d of %d", self.rank, self.world)
            progress = progress and self.rank == 0
        self.progress = progress
        ms.set_seed(config.seed)
        np.random.seed(config.seed)
        self.train_set, self.val_set = prepare_data(config)
        self.cfg = parse_cfg(config.cfg, classes=len(config.data.classes), height=config.input_size,
                             width=config.input_size, anchors=config.anchors)
        self.spec = ModelSpec.from_cfg(self.cfg, config.data.classes)
        (self.out / "config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
        logger.info("data: %d training images %s, %d held out %s", len(self.train_set.samples),
                    self.train_set.counts(), len(self.val_set.samples), self.val_set.counts())
        self.network = DarknetYolo(self.cfg)
        self.loader: BatchLoader | None = None
        self.lrs: np.ndarray | None = None
        self.loss_cell = None
        self.step = None  # the training step (TrainOneStepCell): its parameters are what last.ckpt keeps
        self.best = -1.0  # best held-out mAP@0.5 so far
        self.stale = 0  # evaluations since it improved
        self.history: list[dict] = []
        self.epoch = 0  # the epoch running or just run, from 0
        self.head = "new"  # what happened to the class-dependent head (logged with the strategies)
        self.l2sp_names: tuple = ()  # the conv weights L2-SP pulls towards their pretrained values
        self.l2sp_reference: list = []  # their starting values, in that order
        self.callbacks: dict[str, list] = {event: [] for event in EVENTS}
        self.add_callback("on_best", Trainer._keep_best)
        for default in (Trainer._append_metrics, Trainer._save_last, Trainer._plot_curves, Trainer._log_epoch):
            self.add_callback("on_epoch_end", default)

    # --- hooks ---------------------------------------------------------------------------------------------
    def add_callback(self, event: str, callback) -> None:
        if event not in self.callbacks:
            raise ValueError(f"{event!r} is not a trainer event ({', '.join(EVENTS)})")
        self.callbacks[event].append(callback)

    def run_callbacks(self, event: str, record=None) -> None:
        if self.main_rank:
            for callback in self.callbacks[event]:
                callback(self, record)

    def _keep_best(self, metrics: dict) -> None:
        save_checkpoint(self.network, self.best_path, {"epoch": self.epoch, "mAP50": self.best})
        plot_pr(metrics, str(self.out / "pr.png"))

    def _append_metrics(self, record: dict) -> None:
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _save_last(self, record: dict) -> None:
        ms.save_checkpoint(self.step, str(self.last_path), append_dict={"epoch": self.epoch,
                                                                       "best_map50": self.best,
                                                                       "stale": self.stale})

    def _plot_curves(self, record: dict) -> None:
        plot_curves(self.history, str(self.out / "curves.png"))

    def _log_epoch(self, record: dict) -> None:
        logger.info("epoch %d: %s", record["epoch"], json.dumps(record))

    # --- where things are ----------------------------------------------------------------------------------
    @property
    def l2sp_path(self) -> pathlib.Path:
        return self.out / "l2sp-reference.ckpt"

    @property
    def main_rank(self) -> bool:  # only rank 0 evaluates, writes checkpoints, metrics and exports
        return self.rank == 0

    @property
    def last_path(self) -> pathlib.Path:
        return self.out / "last.ckpt"

    @property
    def best_path(self) -> pathlib.Path:
        return self.out / "best.ckpt"

    # --- the run -------------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        """Load pretrained weights (or resume), run the epochs, export the best model."""
        resuming = resume and self.last_path.is_file()  # the checkpoint replaces the pretrained weights
        if resuming:
            self.head = "as in last.ckpt"
        else:
            self.load_pretrained()
        if self.config.transfer.l2sp is not None:
            self.remember_l2sp_reference(resuming)
        self.log_strategies()
        self.prepare_schedule()
        start_epoch, resume_state = self.resume_from_checkpoint() if resuming else (0, None)
        self.run_callbacks("on_train_start")
        self.run_epochs(start_epoch, resume_state)
        if not self.main_rank:
            return {"rank": self.rank, "world": self.world}
        summary = self.export_best()
        self.run_callbacks("on_train_end", summary)
        return summary

    def load_pretrained(self) -> None:
        """transfer.weights into the network; the class-dependent head re-initialised where asked or where its
        shape differs. What happened to the head is logged with the strategies."""
        t = self.config.transfer
        if not t.weights:
            return
        report = load_weights(self.network, t.weights, strict=True, name_map=t.name_map)
        logger.info("pretrained: %d tensors loaded, new layers %s", len(report.loaded), report.uninitialised_layers)
        classes = list(self.config.data.classes)
        if t.reinit_head:
            reinitialise_head(self.network, self.config.seed)
            self.head = f"re-initialised for {classes} (transfer.reinit_head)"
        elif set(self.network.cfg.class_dependent_convs) <= set(report.uninitialised_layers):
            self.head = f"re-initialised for {classes} (shape differs from the pretrained head)"
        else:
            self.head = "pretrained (same shape; set transfer.reinit_head: true for a new class list)"

    def remember_l2sp_reference(self, resuming: bool) -> None:
        """The starting values L2-SP pulls towards: the pretrained conv weights as loaded (without a head that
        was re-initialised), kept in <out>/l2sp-reference.ckpt so that a resumed run pulls towards the same
        ones."""
        params = network_parameters(self.network)
        if resuming:
            if not self.l2sp_path.is_file():
                raise ConfigError(f"transfer.l2sp: {self.l2sp_path} is missing: the run cannot be resumed with the "
                                  f"same pull (start it again without --resume)")
            reference = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(self.l2sp_path)).items()}
        else:
            head = set(self.network.cfg.class_dependent_convs) if self.head.startswith("re-initialised") else set()
            reference = {name: param.asnumpy().copy() for name, param in params.items()
                         if name.endswith("conv.weight") and layer_of(name) not in head}
            if self.main_rank:
                ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in reference.items()],
                                   str(self.l2sp_path))
        self.l2sp_names = tuple(sorted(reference))
        self.l2sp_reference = [reference[name] for name in self.l2sp_names]

    def log_strategies(self) -> None:
        t, config = self.config.transfer, self.config
        strategies = {"pretrained": t.weights or "none (from scratch)", "head": self.head,
                      "freeze_layers": t.freeze_layers, "unfreeze_epoch": t.unfreeze_epoch,
                      "backbone_lr_scale": config.optim.backbone_lr_scale, "rifle_every": t.rifle_every,
                      "l2sp": {"alpha": t.l2sp, "weights": len(self.l2sp_names)} if t.l2sp is not None else None}
        logger.info("transfer strategies: %s", json.dumps(strategies))

    def prepare_schedule(self) -> None:
        """The batch loader (this rank's shard), the learning-rate schedule and the loss."""
        config = self.config
        self.loader = BatchLoader(self.train_set, self.spec, config, augment=True, seed=config.seed, rank=self.rank,
                                  world=self.world)
        if self.loader.steps == 0:  # per rank: the pictures shared by the ranks of a distributed run
            raise ConfigError(f"{len(self.train_set.samples)} training pictures over {self.world} ranks are fewer "
                              f"than batch_size {config.batch_size} per rank: lower batch_size or add pictures")
        self.lrs = lr_schedule(config, self.loader.steps)
        self.loss_cell = YoloLoss(self.network, config.loss.ignore_iou, config.loss.box, config.loss.obj,
                                  config.loss.cls)
        if config.transfer.l2sp is not None:
            params = network_parameters(self.network)
            self.loss_cell = L2SPLoss(self.loss_cell, [params[name] for name in self.l2sp_names],
                                      self.l2sp_reference, config.transfer.l2sp)

    def resume_from_checkpoint(self):
        """Weights, best score and patience from last.ckpt; the metrics so far. Returns (first epoch to run, the
        checkpoint's tensors, whose optimiser state is loaded once the optimiser exists)."""
        state = ms.load_checkpoint(str(self.last_path))
        start_epoch = int(state["epoch"].asnumpy()) + 1
        self.best = float(state["best_map50"].asnumpy())
        self.stale = int(state["stale"].asnumpy())
        load_weights(self.network, self.last_path, strict=True, expected_new_layers=())
        metrics_path = self.out / "metrics.jsonl"
        self.history = [json.loads(line) for line in metrics_path.read_text().splitlines()] \
            if metrics_path.exists() else []
        logger.info("resumed from %s at epoch %d (best mAP50 %.4f)", self.last_path, start_epoch, self.best)
        return start_epoch, state

    def build_step(self, epoch: int, frozen: bool):
        """The training step (and its optimiser) for the current freezing state, lr schedule from `epoch` on."""
        t = self.config.transfer
        if t.freeze_layers:
            count = freeze(self.network, t.freeze_layers, frozen)
            logger.info("layers 0..%d %s (%d tensors)", t.freeze_layers - 1, "frozen" if frozen else "trainable",
                        count)
        released = None
        if t.freeze_layers and t.unfreeze_epoch is not None and not frozen:  # also when resumed after it
            steps = self.loader.steps
            released = (t.freeze_layers, t.unfreeze_epoch * steps, warmup_steps(self.config, steps))
        optimizer = make_optimizer(self.network, self.config, self.lrs, epoch * self.loader.steps, self.l2sp_names,
                                   released)
        self.step = nn.TrainOneStepCell(self.loss_cell, optimizer)
        self.step.set_train(True)
        if frozen:
            set_frozen_bn_eval(self.network, t.freeze_layers)
        return optimizer

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        """Optimiser state (momentum buffers, its step) by exact name, written into the optimiser's own
        parameters only. Not `load_param_into_net`: for the weights it does not find by name (an L2-SP loss
        wraps the network, so the optimiser knows them as `loss.network...` while the checkpoint says
        `network...`) it strips a prefix from another entry and would write each weight's momentum buffer into
        the weight itself. The weights were loaded with the rest of the checkpoint; the schedule is rebuilt
        from the config."""
        weights = {id(param) for param in network_parameters(self.network).values()}
        loaded = 0
        for param in optimizer.parameters_dict().values():
            if id(param) in weights or param.name.startswith("learning_rate") or param.name not in state:
                continue
            param.set_data(state[param.name])
            loaded += 1
        logger.info("resumed %d optimiser state tensors", loaded)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over this rank's shard; the epoch's record (loss, lr, time, throughput)."""
        config, loader = self.config, self.loader
        started = time.monotonic()
        losses = []
        bar = tqdm(loader.epoch(), total=loader.steps, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not self.progress, unit="batch", dynamic_ncols=True)
        for images, gts, heads in bar:
            loss = float(self.step(ms.Tensor(images), ms.Tensor(gts), *[ms.Tensor(h) for h in heads]).asnumpy())
            if not math.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch + 1}: loss became {loss}; lower optim.lr")
            losses.append(loss)
            rate = len(losses) * config.batch_size / (time.monotonic() - started)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", img_s=f"{rate:.1f}")
        seconds = time.monotonic() - started
        last_step = min((epoch + 1) * loader.steps - 1, len(self.lrs) - 1)
        return {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": float(self.lrs[last_step]),
                "seconds": round(seconds, 1), "images_per_s": round(loader.steps * config.batch_size / seconds, 2)}

    def run_epochs(self, start_epoch: int, resume_state) -> None:
        """The epoch loop with the schedule's events: unfreezing, RIFLE re-initialisation, evaluation, early
        stop."""
        config, t = self.config, self.config.transfer
        frozen = bool(t.freeze_layers) and (t.unfreeze_epoch is None or start_epoch < t.unfreeze_epoch)
        optimizer = self.build_step(start_epoch, frozen)
        if resume_state is not None:
            self.load_optimizer_state(optimizer, resume_state)
        rifle_until = int(config.epochs * (1 - t.rifle_final_fraction))
        for epoch in range(start_epoch, config.epochs):
            if t.unfreeze_epoch is not None and frozen and epoch >= t.unfreeze_epoch:
                frozen = False
                self.build_step(epoch, frozen)
            if t.rifle_every and epoch > 0 and epoch % t.rifle_every == 0 and epoch < rifle_until:
                reinitialise_head(self.network, config.seed + epoch)
                logger.info("RIFLE: class-dependent head re-initialised at epoch %d", epoch)
            self.epoch = epoch
            record = self.train_epoch(epoch)
            stop = False
            if self.main_rank:
                self.end_epoch(epoch, record)
                stop = bool(config.early_stop_patience and self.stale >= config.early_stop_patience)
                if stop:
                    logger.info("early stop: %d evaluations without a better mAP50", self.stale)
            # Every rank leaves the epoch loop together: a rank still in the next epoch's gradient all-reduce
            # would wait for the others for ever.
            if agree_to_stop(stop, self.world):
                break

    def evaluate(self) -> dict:
        """COCO metrics of the network as it is, on the held-out pictures (per source when there are several)."""
        return evaluate_network(self.network, self.val_set, self.spec)

    def end_epoch(self, epoch: int, record: dict) -> None:
        """Rank 0's end of an epoch: evaluate when due (the best kept), then the record's hooks."""
        if (epoch + 1) % self.config.eval_every == 0 or epoch + 1 == self.config.epochs:
            metrics = self.evaluate()
            record.update(mAP50=metrics["mAP50"], mAP50_95=metrics["mAP50_95"],
                          per_class_AP50=metrics["per_class_AP50"])
            if "per_source" in metrics:
                record["per_source"] = {name: {"mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"],
                                               "per_class_AP50": m["per_class_AP50"]}
                                        for name, m in metrics["per_source"].items()}
            self.run_callbacks("on_evaluated", metrics)
            if metrics["mAP50"] > self.best:
                self.best, self.stale = metrics["mAP50"], 0
                self.run_callbacks("on_best", metrics)
            else:
                self.stale += 1
        self.history.append(record)
        self.run_callbacks("on_epoch_end", record)

    def export_best(self) -> dict:
        """best.ckpt (the last weights when no evaluation ever ran) in every export format; the run's summary."""
        config = self.config
        if not self.best_path.is_file():
            save_checkpoint(self.network, self.best_path, {"epoch": config.epochs - 1})
        exports = {}
        from models.export import export_model

        overrides = None
        if config.data.crops is not None:  # the manifest records where the second stage looks
            from train.crop_sets import spec_crops

            overrides = {"crops": spec_crops(config.data.crops)}
        for fmt in config.export_formats:
            result = export_model(self.cfg.source, self.best_path, list(config.data.classes), fmt,
                                  self.out / f"export-{fmt}", size=(config.input_size, config.input_size),
                                  spec_overrides=overrides, anchors=config.anchors)
            exports[fmt] = result.directory
        summary = {"best_mAP50": self.best, "epochs_run": len(self.history), "exports": exports, "out": str(self.out)}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return summary


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """A Trainer's whole run (`inspector train`)."""
    return Trainer(config, progress).fit(resume)


def agree_to_stop(stop: bool, world: int) -> bool:
    """True on every rank when any rank (in practice rank 0, which evaluates) wants to stop."""
    if world <= 1:
        return stop
    from mindspore import ops

    votes = ops.AllReduce()(ms.Tensor(np.array([1.0 if stop else 0.0], np.float32)))  # sum over ranks
    return float(votes.asnumpy()[0]) > 0


def plot_curves(history: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    evaluated = [h for h in history if "mAP50" in h]
    if evaluated:
        twin = ax.twinx()
        twin.plot([h["epoch"] for h in evaluated], [h["mAP50"] for h in evaluated], "o-", color="tab:green",
                  label="mAP@0.5")
        twin.set_ylabel("mAP@0.5")
        twin.set_ylim(0, 1)
        twin.legend(loc="upper right")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
