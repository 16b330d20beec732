"""`inspector train-compare`: the table says what each run did and reads its held-out figures."""

import json

import pytest

from train.compare import markdown

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def write_run(root, name, transfer, evals):
    run = root / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"classes": ["defect"]}, "transfer": transfer,
                                                 "optim": {"backbone_lr_scale": 1.0}}))
    rows = [{"epoch": e, "seconds": 60.0, **({"mAP50": m, "mAP50_95": m / 2, "per_class_AP50": {"defect": m}}
                                             if m is not None else {})} for e, m in evals]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run


def test_table_rows_describe_strategies_and_final_and_best(tmp_path):
    scratch = write_run(tmp_path, "scratch", {}, [(1, None), (2, 0.10), (3, None), (4, 0.05)])
    frozen = write_run(tmp_path, "frozen", {"weights": "/r/source-insulator/best.ckpt", "reinit_head": True,
                                            "freeze_layers": 26, "rifle_every": 20}, [(2, 0.2), (4, 0.3)])
    table = markdown([scratch, frozen]).splitlines()
    assert table[2] == "| scratch | from scratch | 4 | 0.050 | 0.025 | 0.075 (0.050-0.100) | 0.100 (2) | 4 min |"
    assert table[3].startswith("| frozen | from source-insulator, new head, layers 0-25 frozen, RIFLE every 20 "
                               "epochs | 4 | 0.300 |")


def test_runs_alike_but_for_their_seed_are_summed_up_per_strategy(tmp_path):
    def run(name, seed, l2sp, final):
        path = write_run(tmp_path, name, {"weights": "/r/demo-insulator/best.ckpt", "l2sp": l2sp},
                         [(5, final / 2), (10, final)])
        config = json.loads((path / "config.json").read_text())
        config.update(seed=seed, out=str(path))
        config["data"]["label_fraction"] = {"defect": 0.25}
        (path / "config.json").write_text(json.dumps(config))
        return path

    runs = [run("l2sp-s0", 0, 0.01, 0.2), run("l2sp-s1", 1, 0.01, 0.4), run("plain-s0", 0, None, 0.1)]
    table = markdown(runs).splitlines()
    assert table[2].startswith("| l2sp-s0 | from demo-insulator, L2-SP 0.01 | 10 | 0.200 |")
    summary = table[table.index("Over seeds, mean (range):") + 2:]
    assert summary[2] == ("| from demo-insulator, L2-SP 0.01 | 25% (defect) | 0, 1 | 0.300 (0.200-0.400) | "
                          "0.150 (0.100-0.200) |")
    assert summary[3].startswith("| from demo-insulator | 25% (defect) | 0 | 0.100 (0.100-0.100) |")


def test_a_setting_added_since_at_its_default_does_not_split_the_seeds(tmp_path):
    """A run banked before a config key existed is grouped with a newer run that has the key at its default."""
    from train.config import TrainConfig

    def run(name, seed, base=None, **augment):
        path = write_run(tmp_path, name, {}, [(5, 0.1 + seed / 10)])
        config = TrainConfig.model_validate({"data": {"path": "/d", "classes": ["defect"]}, "seed": seed,
                                             "out": str(path), "augment": augment,
                                             "base": base}).model_dump(mode="json")
        if not augment:
            del config["augment"]["rotate90"]  # as written before the key existed
        (path / "config.json").write_text(json.dumps(config))
        return path

    # The same settings written as a variation of another config (`base`, where they came from) group too.
    summary = markdown([run("old-s0", 0), run("new-s1", 1, rotate90=0.0), run("turned-s2", 2, rotate90=0.5),
                        run("based-s3", 3, base="/c/base.yaml")])
    lines = summary.splitlines()
    rows = lines[lines.index("Over seeds, mean (range):") + 2:]
    assert [row.split(" | ")[2] for row in rows[2:]] == ["0, 1, 3", "2"]  # a setting that differs still splits


def test_what_is_not_a_finished_run_is_one_line_naming_it(tmp_path, capsys):
    from inspector.cli import main

    run = write_run(tmp_path, "early", {}, [(1, None)])
    (tmp_path / "compare.md").write_text("| a table |\n")  # what a glob over a folder of banked runs also finds
    for path, message in ((tmp_path / "compare.md", "not a training run"),
                          (run, "no evaluation in metrics.jsonl yet")):
        assert main(["train-compare", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"{path}: {message}" in err and "Traceback" not in err


def test_runs_over_several_sources_show_each_sources_map(tmp_path):
    def run(name, seed, idd, cplid):
        path = write_run(tmp_path, name, {}, [(10, (idd + cplid) / 2)])
        rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        rows[-1]["per_source"] = {"idd": {"mAP50": idd}, "cplid": {"mAP50": cplid}}
        (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, "seed": seed, "out": str(path)}))
        return path

    table = markdown([run("s0", 0, 0.1, 0.5), run("s1", 1, 0.3, 0.7)]).splitlines()
    assert table[0].startswith("| run | strategy | epochs | mAP@0.5 (end) | idd mAP@0.5 (end) | cplid mAP@0.5 (end) |")
    assert table[2].startswith("| s0 | from scratch | 10 | 0.300 | 0.100 | 0.500 |")
    summary = table[table.index("Over seeds, mean (range):") + 2:]
    assert summary[0].startswith("| strategy | labels | seeds | mAP@0.5 (end) | idd mAP@0.5 (end) | cplid mAP@0.5")
    assert summary[2].startswith("| from scratch | all | 0, 1 | 0.400 (0.300-0.500) | 0.200 (0.100-0.300) | "
                                 "0.600 (0.500-0.700) |")
