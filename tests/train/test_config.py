"""The training config: one data set (`path`) or several (`sources`), each error naming its key."""

from __future__ import annotations

import pytest
import yaml

from core.errors import ConfigError
from train.config import load_train_config

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def write(tmp_path, data: dict):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"cfg": "yolov4-tiny", "data": data}))
    return path


@pytest.mark.parametrize("data, message", [
    ({"classes": ["a"]}, "give either path (one data set) or sources (several)"),
    ({"classes": ["a"], "path": "x", "sources": [{"name": "s", "path": "y"}]}, "not both or neither"),
    ({"classes": ["a"], "sources": [{"name": "s", "path": "y"}, {"name": "s", "path": "z"}]},
     "sources: names must differ"),
    ({"classes": ["a"], "sources": [{"name": "s", "path": "y", "class_map": {"defect": "missing-cap"}}]},
     "sources.s.class_map: ['missing-cap'] are not in data.classes"),
    ({"classes": ["a"], "sources": [{"name": "s", "path": "y"}], "val_path": "v"},
     "val_path: with sources, give each source its own val_path"),
    ({"classes": ["a"], "sources": [{"name": "bad name", "path": "y"}]}, "data.sources.0.name"),
])
def test_data_sources_are_checked(tmp_path, data, message):
    with pytest.raises(ConfigError) as refused:
        load_train_config(write(tmp_path, data))
    assert message in str(refused.value) and str(tmp_path / "train.yaml") in str(refused.value)


def test_source_paths_are_relative_to_the_config(tmp_path):
    config = load_train_config(write(tmp_path, {"classes": ["a"], "sources": [
        {"name": "idd", "path": "../shared/idd", "format": "coco", "val_path": "held"}]}))
    source = config.data.source_list()[0]
    assert source.path == str((tmp_path / "../shared/idd").resolve()) and source.val_path == str(tmp_path / "held")
    single = load_train_config(write(tmp_path, {"classes": ["a"], "path": "voc", "val_path": "v"})).data
    assert [(s.name, s.path, s.format, s.val_path) for s in single.source_list()] == \
        [("data", str(tmp_path / "voc"), "voc", str(tmp_path / "v"))]


def test_command_line_overrides_reach_into_sections(tmp_path):
    from inspector.cli import build_parser

    path = write(tmp_path, {"classes": ["a", "b"], "path": "voc", "label_fraction": {"a": 0.5}})
    args = build_parser().parse_args(["train", "--config", str(path), "--seed", "3", "--set",
                                      "data.label_fraction.b=0.25", "--set", "transfer.weights=w/best.ckpt",
                                      "--set", "optim.lr=1e-3"])
    config = load_train_config(path, dict(args.set, seed=args.seed))
    assert config.seed == 3 and config.data.label_fraction == {"a": 0.5, "b": 0.25}
    assert config.optim.lr == 0.001 and config.transfer.weights == str(tmp_path / "w" / "best.ckpt")
    # An empty mapping replaces the section's value (every label kept); the file is not changed.
    assert load_train_config(path, {"data.label_fraction": {}}).data.label_fraction == {}
    assert yaml.safe_load(path.read_text())["data"]["label_fraction"] == {"a": 0.5}


@pytest.mark.parametrize("override, message", [
    ({"cfg.size": 416}, "override cfg.size: cfg is not a mapping"),
    ({"base": "other.yaml"}, "override base: a base is read with the file"),
    ({"optim.lr": "fast"}, "optim.lr"),
    ({"optim.learning_rate": 0.1}, "optim.learning_rate"),
    ({"data.label_fraction.b": 0.5}, r"label_fraction.b: not in data.classes \['a'\]"),
    ({"data.label_fraction.a": 0}, r"label_fraction.a: 0.0 is not a fraction in \(0, 1\]"),
])
def test_a_bad_override_is_named(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(write(tmp_path, {"classes": ["a"], "path": "voc"}), override)


def test_a_config_varies_its_base(tmp_path):
    """An experiment gives only what differs from the config it varies; each path stays relative to its file."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({
        "cfg": "yolov4-tiny", "out": "runs/base", "transfer": {"weights": "w/best.ckpt"},
        "optim": {"lr": 0.01, "warmup_epochs": 3},
        "data": {"classes": ["a"], "sources": [{"name": "s", "path": "data/s"}], "label_fraction": {"a": 0.5},
                 "crops": {"parents": ["p"], "margin": 0.5, "max_side": 0.25}}}))
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "my.cfg").write_text("[net]\n")
    middle = tmp_path / "exp" / "middle.yaml"
    middle.write_text(yaml.safe_dump({"base": "../base.yaml", "input_size": 192, "cfg": "my.cfg",
                                      "optim": {"lr": 0.005}, "out": "runs/middle"}))
    child = tmp_path / "exp" / "child.yaml"
    child.write_text(yaml.safe_dump({"base": "middle.yaml", "data": {"crops": {"max_side": 0.3},
                                                                      "label_fraction": {}}}))
    config = load_train_config(child)
    # Sections merge key by key, through the chain.
    assert (config.data.crops.max_side, config.data.crops.margin, config.data.crops.parents) == (0.3, 0.5, ["p"])
    assert (config.optim.lr, config.optim.warmup_epochs, config.input_size) == (0.005, 3, 192)
    # Any other value replaces the base's: an empty label_fraction keeps every label.
    assert config.data.label_fraction == {} and config.data.classes == ["a"]
    # Each path is relative to the file that gives it; `out` is never inherited (default: beside the file).
    assert config.data.sources[0].path == str(tmp_path / "data" / "s")
    assert config.transfer.weights == str(tmp_path / "w" / "best.ckpt")
    assert config.cfg == str(tmp_path / "exp" / "my.cfg") and load_train_config(base).cfg == "yolov4-tiny"
    assert config.out == str(tmp_path / "exp" / "runs" / "train") and config.base == str(middle)
    assert load_train_config(middle).out == str(tmp_path / "exp" / "runs" / "middle")
    assert load_train_config(child, {"out": "o"}).out == str(tmp_path / "exp" / "o")


def test_the_merged_config_is_printed_without_training(tmp_path, capsys):
    """`inspector train --print-config`: what a training would run, base and overrides in, and nothing trained."""
    from inspector.cli import main

    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"cfg": "yolov4-tiny", "epochs": 30, "out": "runs/base",
                                                         "data": {"classes": ["a"], "path": "voc"},
                                                         "optim": {"lr": 0.01, "warmup_epochs": 3}}))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "optim": {"lr": 0.005}, "out": "runs/exp"}))
    assert main(["train", "--config", str(path), "--set", "optim.warmup_epochs=1", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 0.005 and printed["optim"]["warmup_epochs"] == 1 and printed["epochs"] == 30
    assert printed["data"]["path"] == str(tmp_path / "voc") and printed["out"] == str(tmp_path / "runs" / "exp")
    assert printed["base"] == str(tmp_path / "base.yaml") and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("base, message", [
    ("missing.yaml", "{tmp}/train.yaml: base: {tmp}/missing.yaml: no such file"),
    ("train.yaml", "{tmp}/train.yaml: base: train.yaml leads back to itself"),
    ("loop.yaml", "{tmp}/loop.yaml: base: train.yaml leads back to itself ({tmp}/train.yaml -> {tmp}/loop.yaml -> "
                  "{tmp}/train.yaml)"),
    ("list.yaml", "{tmp}/train.yaml: base: {tmp}/list.yaml is not a mapping of training keys"),
    (3, "{tmp}/train.yaml: base: a training config's path, not 3"),
])
def test_a_bad_base_is_named(tmp_path, base, message):
    (tmp_path / "loop.yaml").write_text("base: train.yaml\n")
    (tmp_path / "list.yaml").write_text("- cfg\n")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"base": base, "data": {"classes": ["a"], "path": "voc"}}))
    with pytest.raises(ConfigError) as refused:
        load_train_config(path)
    assert str(refused.value).startswith(message.format(tmp=tmp_path))


@pytest.mark.parametrize("text", ["lr", "=3", "optim..lr=1", "optim.lr=[1"])
def test_set_needs_a_key_and_a_yaml_value(text, capsys):
    from inspector.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--config", "x.yaml", "--set", text])
    assert "--set" in capsys.readouterr().err


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "train" / "configs").rglob("*.yaml")))
def test_the_shipped_training_configs_load(path):
    """Every example and experiment config is valid, so hours of training do not end at a typo."""
    load_train_config(REPO / path)


def test_the_field_transfer_strategies_are_valid_overrides():
    """run-all.sh's strategies are `--set` overrides of one config: each must make a valid config of its own."""
    import re
    import shlex

    from train.cli import key_value

    script = (REPO / "train" / "configs" / "field" / "transfer" / "run-all.sh").read_text()
    strategies = dict(re.findall(r'^\s+(\w+)\) echo "([^"]*)"\s*;;', script, re.M))
    assert set(strategies) == {"scratch", "finetune", "frozen", "l2sp", "rifle", "lowlr", "staged"}
    fraction = re.search(r'fraction="(--set [^"]+)"', script).group(1)
    halves = re.findall(r"half=(\d+)", script)  # a quarter of the labels, then all of them
    configs = {}
    for name, words in strategies.items():
        for labels, half in (([], halves[0]), (shlex.split(fraction), halves[1])):
            words_all = shlex.split(words.replace("$2", half)) + labels
            overrides = dict(key_value(v) for k, v in zip(words_all[::2], words_all[1::2]) if k == "--set")
            configs[name, bool(labels)] = load_train_config(
                REPO / "train" / "configs" / "field" / "transfer" / "defects.yaml", overrides)
    assert configs["scratch", False].transfer.weights is None
    # The config is the recipe (a tenth of the lr on the backbone); every other strategy trains at the full lr.
    for (name, _), config in configs.items():
        assert config.optim.backbone_lr_scale == (0.1 if name == "lowlr" else 1.0), name
    assert configs["frozen", False].transfer.freeze_layers == 26 and configs["l2sp", False].transfer.l2sp == 0.01
    assert configs["rifle", False].transfer.rifle_every == 10
    assert configs["finetune", False].data.label_fraction and configs["finetune", True].data.label_fraction == {}
    assert configs["finetune", False].epochs == 100 and configs["finetune", True].epochs == 60
    for labels in (False, True):  # released half-way through either schedule
        staged = configs["staged", labels]
        assert staged.transfer.freeze_layers == 26 and 2 * staged.transfer.unfreeze_epoch == staged.epochs
