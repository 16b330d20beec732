"""Train -> evaluate -> export on a tiny generated data set, resume, and each transfer strategy."""

import json

import numpy as np
import pytest

pytest.importorskip("mindspore")  # training: the fast tier

from models.spec import ModelSpec
from models.weights import network_parameters
from inspector.cli import main
from train import trainer as trainer_module
from train.config import TrainConfig
from train.testing import write_voc_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_voc_dataset(tmp_path_factory.mktemp("voc"), images=24)


def config(data_dir, out, **overrides):
    base = {"cfg": "yolov4-tiny-half", "input_size": 128, "data": {"path": str(data_dir), "classes": ["box", "disc"],
            "val_fraction": 0.25}, "epochs": 6, "batch_size": 6, "eval_every": 3, "out": str(out),
            "optim": {"lr": 0.01, "warmup_epochs": 1}, "augment": {"mosaic": 0.0}}
    for key, value in overrides.items():
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)


@pytest.mark.slow
def test_train_evaluate_export_loop(data_dir, tmp_path, capsys):
    trainer = trainer_module.Trainer(config(data_dir, tmp_path / "run"), progress=False)
    events = []
    for event in trainer_module.EVENTS:
        trainer.add_callback(event, lambda t, record, event=event: events.append((event, t.epoch + 1)))
    with pytest.raises(ValueError, match="'on_batch' is not a trainer event"):
        trainer.add_callback("on_batch", print)
    summary = trainer.fit()
    # The hooks, in order: evaluated at epochs 3 and 6 (eval_every 3), the first evaluation a best, every epoch's
    # record after its evaluation, the end once.
    assert events[0] == ("on_train_start", 1) and events[-1] == ("on_train_end", 6)
    assert [e for e in events if e[0] == "on_evaluated"] == [("on_evaluated", 3), ("on_evaluated", 6)]
    assert [e for e in events if e[0] == "on_epoch_end"] == [("on_epoch_end", n) for n in range(1, 7)]
    assert events.index(("on_best", 3)) == events.index(("on_evaluated", 3)) + 1
    assert events.index(("on_epoch_end", 3)) > events.index(("on_best", 3))
    history = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]  # the loss falls
    assert "mAP50" in history[2] and "mAP50" in history[5]
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    export = summary["exports"]["onnx"]
    assert ModelSpec.load(export).class_names == ("box", "disc")
    assert main(["eval", "--model", export, "--data", str(data_dir), "--plot", str(tmp_path / "pr.png")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics["per_class_AP50"]) == {"box", "disc"} and metrics["images"] == 24
    assert 0.0 <= metrics["mAP50"] <= 1.0 and (tmp_path / "pr.png").is_file()


@pytest.mark.slow
def test_resume_continues_where_it_stopped(data_dir, tmp_path):
    out = tmp_path / "run"
    trainer_module.train(config(data_dir, out, epochs=2, eval_every=5, export_formats=[]), progress=False)
    first = (out / "metrics.jsonl").read_text().splitlines()
    trainer_module.train(config(data_dir, out, epochs=4, eval_every=5, export_formats=[]), resume=True, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert lines[:2] == first and [json.loads(l)["epoch"] for l in lines] == [1, 2, 3, 4]
    # The learning-rate schedule continued (epoch 3's lr follows epoch 2's), not restarted from warm-up.
    assert json.loads(lines[2])["lr"] != json.loads(lines[0])["lr"]


@pytest.mark.slow
@pytest.mark.parametrize("l2sp", [None, 100.0], ids=["plain", "l2sp"])
def test_a_resumed_run_starts_from_its_checkpoint(data_dir, tmp_path, weights_factory, l2sp):
    """The weights and momentum buffers a resumed run's first epoch starts with are last.ckpt's, also where the
    loss wraps the network (L2-SP), whose optimiser knows the weights under other names than the checkpoint."""
    import mindspore as ms

    start = weights_factory("yolov4-tiny-half", 2, seed=11)

    def run_config(epochs):
        return config(data_dir, tmp_path / "run", epochs=epochs, eval_every=5, export_formats=[],
                      transfer={"weights": str(start), "l2sp": l2sp, "reinit_head": True})

    trainer_module.train(run_config(1), progress=False)
    saved = {name: value.asnumpy() for name, value in
             ms.load_checkpoint(str(tmp_path / "run" / "last.ckpt")).items()}
    resumed = trainer_module.Trainer(run_config(2), progress=False)
    seen = {}
    first_epoch = resumed.train_epoch

    def capture(epoch):
        seen["weights"] = {n: p.asnumpy().copy() for n, p in network_parameters(resumed.network).items()}
        seen["moments"] = {p.name: p.asnumpy().copy() for p in resumed.step.optimizer.parameters_dict().values()
                           if p.name.startswith("moments.")}
        return first_epoch(epoch)

    resumed.train_epoch = capture
    resumed.fit(resume=True)
    assert seen["moments"] and set(seen["moments"]) <= set(saved)
    assert not [n for n, w in seen["weights"].items() if not np.array_equal(w, saved[f"network.{n}"])]
    assert not [n for n, m in seen["moments"].items() if not np.array_equal(m, saved[n])]
    assert any(np.abs(m).max() > 0 for m in seen["moments"].values())  # a trained epoch's buffers, not zeros


@pytest.mark.slow
def test_frozen_layers_do_not_change(data_dir, tmp_path, monkeypatch):
    captured = {}
    original = trainer_module.build_targets

    def snapshot_network(cls_init):
        def init(self, cfg):
            cls_init(self, cfg)
            captured["network"] = self
        return init

    monkeypatch.setattr(trainer_module.DarknetYolo, "__init__",
                        snapshot_network(trainer_module.DarknetYolo.__init__))
    before = {}

    def build(*args, **kwargs):
        if not before and "network" in captured:
            before.update({n: p.asnumpy().copy() for n, p in network_parameters(captured["network"]).items()})
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "build_targets", build)
    trainer_module.train(config(data_dir, tmp_path / "run", epochs=2, eval_every=5, export_formats=[],
                                transfer={"freeze_layers": 10}), progress=False)
    after = {n: p.asnumpy() for n, p in network_parameters(captured["network"]).items()}
    frozen = [n for n in after if int(n.split(".")[1]) < 10]
    assert frozen and all(np.array_equal(before[n], after[n]) for n in frozen)  # BatchNorm statistics too
    trained = [n for n in after if int(n.split(".")[1]) >= 10 and n.endswith("conv.weight")]
    assert all(not np.array_equal(before[n], after[n]) for n in trained)


@pytest.mark.slow
def test_rifle_reinitialises_exactly_the_head_on_schedule(data_dir, tmp_path, monkeypatch):
    calls = []
    original = trainer_module.reinitialise_head

    def record(network, seed):
        before = {n: p.asnumpy().copy() for n, p in network_parameters(network).items()}
        names = original(network, seed)
        after = {n: p.asnumpy() for n, p in network_parameters(network).items()}
        changed = sorted(n for n in after if not np.array_equal(before[n], after[n]))
        calls.append((seed, changed))
        return names

    monkeypatch.setattr(trainer_module, "reinitialise_head", record)
    trainer_module.train(config(data_dir, tmp_path / "run", epochs=6, eval_every=10, export_formats=[],
                                transfer={"rifle_every": 2, "rifle_final_fraction": 0.3}), progress=False)
    # Every 2 epochs, not in the final 30% (epochs 5-6): at the start of epochs 3 and 5? 6 * 0.7 = 4 -> only 2.
    assert [seed for seed, _ in calls] == [2]
    assert calls[0][1] == ["layers.29.conv.bias", "layers.29.conv.weight", "layers.36.conv.bias",
                           "layers.36.conv.weight"]


@pytest.mark.slow
def test_data_parallel_under_msrun(data_dir, tmp_path):
    """MindSpore's own launcher with two CPU workers: both join, shard the data, rank 0 writes the results, and
    an early stop decided by rank 0 ends every rank (before, rank 1 waited for ever in the next all-reduce)."""
    import os
    import pathlib
    import subprocess
    import sys

    bin_dir = pathlib.Path(sys.executable).parent
    msrun = bin_dir / "msrun"
    if not msrun.exists():
        pytest.skip("msrun (MindSpore's launcher) is not installed beside this Python")
    config_path = tmp_path / "train.yaml"
    config_path.write_text(json.dumps({
        "cfg": "yolov4-tiny-half", "input_size": 128, "epochs": 4, "batch_size": 4, "eval_every": 1,
        # Everything but the last head conv frozen (BatchNorm in inference mode) and a negligible lr: the second
        # evaluation cannot beat the first, so patience 1 stops after epoch 2 of 4, deterministically.
        "early_stop_patience": 1, "transfer": {"freeze_layers": 36}, "optim": {"lr": 1e-9, "warmup_epochs": 0},
        "data": {"path": str(data_dir), "classes": ["box", "disc"], "val_fraction": 0.25},
        "out": str(tmp_path / "run"), "export_formats": []}))
    import inspector.launch

    launch = pathlib.Path(inspector.launch.__file__)
    result = subprocess.run(
        [str(msrun), "--worker_num=2", "--local_worker_num=2", "--master_port=8119", f"--log_dir={tmp_path / 'log'}",
         "--join=True", str(launch), "--config", str(config_path), "--no-progress"],
        env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"), capture_output=True, text=True, timeout=600)
    logs = {p.name: p.read_text() for p in (tmp_path / "log").glob("worker_*.log")}
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + logs.get("worker_0.log", "")[-3000:]
    assert "data parallel: rank 0 of 2" in logs["worker_0.log"] and "data parallel: rank 1 of 2" in logs["worker_1.log"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]  # written once, by rank 0; stopped early
    assert "early stop" in logs["worker_0.log"]


@pytest.mark.slow
def test_a_second_stage_trains_on_crops_and_the_cascade_evaluates_end_to_end(tmp_path, weights_factory, capsys):
    import yaml

    from models.export import export_model
    from train.testing import CASCADE_CLASSES, write_cascade_dataset

    data = write_cascade_dataset(tmp_path / "data", images=16)
    crops = {"parents": ["string"], "margin": 0.25, "max_aspect": 1.5, "overlap": 0.25, "min_side": 32}
    path = tmp_path / "stage2.yaml"
    path.write_text(yaml.safe_dump({
        "cfg": "yolov4-tiny-half", "input_size": 64, "epochs": 2, "batch_size": 4, "eval_every": 2,
        "data": {"path": str(data), "classes": ["fault"], "val_fraction": 0.25, "crops": crops},
        "optim": {"warmup_epochs": 1}, "augment": {"mosaic": 0.0}, "out": str(tmp_path / "run")}))
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    stage2 = summary["exports"]["onnx"]
    assert ModelSpec.load(stage2).crops == crops | {"max_side": 0.3}  # the deployed crop is the trained crop
    counts = json.loads((tmp_path / "run" / "crops" / "crops.json").read_text())["counts"]
    assert counts["val"]["pictures"] == 4 and counts["train"]["pictures"] == 12
    stage1 = tmp_path / "stage1"
    export_model("yolov4-tiny", weights_factory("yolov4-tiny", 2, seed=5), list(CASCADE_CLASSES), "onnx", stage1,
                 size=(128, 128))
    assert main(["eval", "--model", str(stage1), "--stage2", stage2, "--held-out-of", str(path),
                 "--parent-score", "0.0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pictures"] == 4 and report["crops_per_picture"] > 0
    assert set(report["stage1"]["per_class_AP50"]) == {"string", "fault"}
    assert set(report["cascade"]["per_class_AP50"]) == {"fault"}
    # The second stage alone is not a first stage: eval --stage2 with the roles swapped says why.
    assert main(["eval", "--model", stage2, "--stage2", str(stage1), "--held-out-of", str(path)]) == 1
    assert "no `crops`" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda d, tmp: {"data": {"path": str(tmp / "empty")}}, "no usable labelled training picture"),
    (lambda d, tmp: {"batch_size": 64}, "18 training pictures are fewer than batch_size 64"),
    (lambda d, tmp: {"data": {"classes": ["box", "disk"]}}, "data.classes: ['disk'] have no object in the 18"),
    (lambda d, tmp: {"data": {"classes": ["box"], "crops": {"parents": ["tower"]}}},
     "data.crops.parents: no object of ['tower'] in the 18 training pictures"),
])
def test_a_run_that_cannot_learn_is_refused_before_it_starts(data_dir, tmp_path, capsys, edit, message):
    import yaml

    (tmp_path / "empty" / "images").mkdir(parents=True)
    overrides = edit(data_dir, tmp_path)
    data = config(data_dir, tmp_path / "run", **overrides).model_dump(mode="json", exclude_none=True)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_l2sp_pulls_the_pretrained_weights_back_and_resumes_with_the_same_pull(data_dir, tmp_path, weights_factory):
    """Trained with a strong L2-SP weight, the pretrained conv weights end nearer their start than without; the
    re-initialised head is not pulled; a resumed run pulls towards the same reference (kept in the run)."""
    from models.weights import network_parameters as params_of
    from train import trainer as t

    start = weights_factory("yolov4-tiny-half", 2, seed=11)
    distances = {}
    for label, l2sp in (("plain", None), ("l2sp", 100.0)):
        captured = {}

        def keep(trainer, _, captured=captured):  # the weights as the epochs start: pretrained, head new
            captured["start"] = {n: p.asnumpy().copy() for n, p in params_of(trainer.network).items()}

        run = t.Trainer(config(data_dir, tmp_path / label, epochs=2, eval_every=5, export_formats=[],
                               transfer={"weights": str(start), "l2sp": l2sp, "reinit_head": True}), progress=False)
        run.add_callback("on_train_start", keep)
        run.fit()
        after = {n: p.asnumpy() for n, p in params_of(run.network).items()}
        backbone = [n for n in after if n.endswith("conv.weight") and int(n.split(".")[1]) < 20]
        distances[label] = sum(float(((after[n] - captured["start"][n]) ** 2).sum()) for n in backbone)
        if l2sp:
            head = {f"layers.{i}.conv.weight" for i in run.network.cfg.class_dependent_convs}
            assert run.l2sp_names and not head & set(run.l2sp_names)
            assert (tmp_path / label / "l2sp-reference.ckpt").is_file()
    assert distances["l2sp"] < 0.5 * distances["plain"], distances
    resumed = t.train(config(data_dir, tmp_path / "l2sp", epochs=3, eval_every=5, export_formats=[],
                             transfer={"weights": str(start), "l2sp": 100.0, "reinit_head": True}), resume=True,
                      progress=False)
    assert resumed["epochs_run"] == 3


def test_layers_released_mid_run_warm_up_again_from_the_unfreeze_step():
    """Staged unfreezing: the layers released at the unfreeze step start at lr 0 and reach the schedule (at the
    backbone's scale) linearly over the warm-up's steps; the other layers follow the schedule throughout."""
    from models.darknet_cfg import parse_cfg
    from train import trainer as t

    network = t.DarknetYolo(parse_cfg("yolov4-tiny-half", classes=2, height=64, width=64))
    settings = TrainConfig.model_validate({"cfg": "yolov4-tiny-half", "input_size": 64, "epochs": 4,
                                           "data": {"path": "unused", "classes": ["a", "b"]},
                                           "optim": {"warmup_epochs": 1, "backbone_lr_scale": 0.5}})
    lrs = t.lr_schedule(settings, 10)  # 10 steps an epoch: 40 steps
    optimizer = t.make_optimizer(network, settings, lrs, released=(10, 20, 10))  # layers 0-9 from step 20
    seen = {p.name: lr.learning_rate.asnumpy() for p, lr in zip(optimizer.parameters, optimizer.learning_rate)}
    end = t.backbone_end(network)
    assert 10 < end  # layers 10 .. end-1: backbone, not released mid-run
    ramp = np.clip((np.arange(40) - 19) / 10, 0, 1)
    for name, group_lrs in seen.items():
        layer = int(name.split(".")[1])
        expected = lrs * (0.5 if layer < end else 1.0) * (ramp if layer < 10 else 1.0)
        np.testing.assert_allclose(group_lrs, expected, rtol=1e-6, err_msg=name)
    early = seen["layers.0.conv.weight"]
    assert not early[:20].any() and 0 < early[20] < early[25] < early[29] and early[29] == pytest.approx(0.5 * lrs[29])
    assert np.array_equal(t.rewarm(lrs, 0, 0), lrs)  # no warm-up asked: the schedule as it is


@pytest.mark.parametrize("rotate90", (0.0, 1.0))
def test_the_loader_turns_pictures_a_quarter_when_asked(tmp_path, rotate90):
    """augment.rotate90: the training pictures come turned (wide bars become tall), either way, boxes with them;
    at 0 they come as they are."""
    import cv2

    from models.darknet_cfg import parse_cfg
    from train.testing import write_voc_sample

    root = tmp_path / "bars"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index in range(16):  # a wide red bar, off centre, in a wide picture
        image = np.full((96, 160, 3), 90, np.uint8)
        cv2.rectangle(image, (20, 10 + index), (99, 29 + index), (0, 0, 230), -1)
        write_voc_sample(root, f"{index}", ".png", image, [("box", 20, 10 + index, 100, 30 + index)])
    settings = config(root, tmp_path / "out", data={"path": str(root), "classes": ["box"], "val_fraction": 0.25},
                      batch_size=4, augment={"scale": 0.0, "translate": 0.0, "hsv_h": 0.0, "hsv_s": 0.0,
                                             "hsv_v": 0.0, "flip": 0.0, "rotate90": rotate90})
    dataset, _ = trainer_module.prepare_data(settings)
    cfg = parse_cfg(settings.cfg, classes=1, height=settings.input_size, width=settings.input_size)
    loader = trainer_module.BatchLoader(dataset, ModelSpec.from_cfg(cfg, ("box",)), settings, augment=True, seed=0)
    ends = set()
    for images, gts, _ in loader.epoch():
        for image, box in zip(images, gts[:, 0]):
            width, height = box[2] - box[0], box[3] - box[1]
            assert (height > 3 * width) if rotate90 else (width > 3 * height), box
            # The box is on the bar's pixels (the red channel of the normalised RGB input is high there).
            x1, y1, x2, y2 = np.round(box).astype(int)
            assert image[0, y1 + 1:y2 - 1, x1 + 1:x2 - 1].min() > 0.8, box
            ends.add(bool(y1 < 0.3 * settings.input_size))  # a clockwise turn takes the bar's left end up
    assert len(ends) == (2 if rotate90 else 1)  # turned both ways
