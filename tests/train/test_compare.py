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
