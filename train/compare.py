"""`inspector train-compare RUN...`: runs side by side (from each run's config.json and metrics.jsonl), as a
markdown table: what the run did, its held-out mAP@0.5 at the end (per class, and per source when the runs
read several) and at its best evaluation. Runs that differ only by their seed are then summed up in a second
table, one row per strategy and share of labels: the mean and range over the seeds of the final figures."""

from __future__ import annotations

import json
import pathlib

from core.errors import UserError

LAST = 5  # evaluations averaged: on a small held-out set one evaluation is noisy


def describe(config: dict) -> str:
    t = config.get("transfer") or {}
    if not t.get("weights"):
        return "from scratch"
    parts = [f"from {pathlib.Path(t['weights']).parent.name}"]
    if t.get("reinit_head"):
        parts.append("new head")
    if t.get("freeze_layers"):
        parts.append(f"layers 0-{t['freeze_layers'] - 1} frozen" + (f" until epoch {t['unfreeze_epoch']}"
                                                                     if t.get("unfreeze_epoch") else ""))
    if t.get("rifle_every"):
        parts.append(f"RIFLE every {t['rifle_every']} epochs")
    if t.get("l2sp"):
        parts.append(f"L2-SP {t['l2sp']:g}")
    if (config.get("optim") or {}).get("backbone_lr_scale", 1.0) != 1.0:
        parts.append(f"backbone lr x{config['optim']['backbone_lr_scale']}")
    return ", ".join(parts)


def labels(config: dict) -> str:
    """The share of the training labels the run kept (data.label_fraction), e.g. `25% (broken, missing-cap)`."""
    fractions = (config.get("data") or {}).get("label_fraction") or {}
    if not fractions:
        return "all"
    shares = sorted(set(fractions.values()))
    if len(shares) == 1:
        return f"{shares[0]:.0%} ({', '.join(fractions)})"
    return ", ".join(f"{name} {share:.0%}" for name, share in fractions.items())


def with_defaults(config: dict) -> dict:
    """A run's settings with today's defaults filled in, so that a key added since (left at its default) does not
    tell two runs apart. A config this version cannot read is compared as written."""
    from train.config import TrainConfig

    try:
        return TrainConfig.model_validate(config).model_dump(mode="json")
    except ValueError:  # pydantic's ValidationError
        return config


def summarise(run: pathlib.Path) -> dict:
    if not (run / "config.json").is_file() or not (run / "metrics.jsonl").is_file():
        raise UserError(f"{run}: not a training run (a run directory holds config.json and metrics.jsonl)")
    config = json.loads((run / "config.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evaluated = [r for r in rows if "mAP50" in r]
    if not evaluated:
        raise UserError(f"{run}: no evaluation in metrics.jsonl yet")
    final, best = evaluated[-1], max(evaluated, key=lambda r: r["mAP50"])
    last = [r["mAP50"] for r in evaluated[-LAST:]]
    same = {k: v for k, v in with_defaults(config).items() if k not in ("seed", "out", "base")}
    return {"run": run.name, "strategy": describe(config), "labels": labels(config), "seed": config.get("seed", 0),
            "group": json.dumps(same, sort_keys=True), "epochs": rows[-1]["epoch"],
            "last_mean": sum(last) / len(last), "last_range": (min(last), max(last)), "last_count": len(last),
            "train_seconds": round(sum(r.get("seconds", 0) for r in rows)), "final": final, "best": best,
            "classes": config["data"]["classes"], "sources": list(final.get("per_source") or {})}


def source_map(final: dict, source: str) -> float:
    return ((final.get("per_source") or {}).get(source) or {}).get("mAP50", float("nan"))


def shown_sources(summaries: list[dict]) -> list[str]:
    """The sources of the first run, when it has several: each one's own mAP is a column."""
    sources = summaries[0]["sources"]
    return sources if len(sources) > 1 else []


def markdown(runs: list[pathlib.Path]) -> str:
    summaries = [summarise(r) for r in runs]
    classes = summaries[0]["classes"]
    per_class = len(classes) > 1
    sources = shown_sources(summaries)
    header = ["run", "strategy", "epochs", "mAP@0.5 (end)", "mAP@0.5:0.95 (end)",
              f"mAP@0.5, last {LAST} evaluations: mean (range)", "best mAP@0.5 (epoch)", "train time"]
    if per_class:
        header[4:4] = [f"{c} AP@0.5 (end)" for c in classes]
    header[4:4] = [f"{source} mAP@0.5 (end)" for source in sources]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s["run"], s["strategy"], str(s["epochs"]), f"{s['final']['mAP50']:.3f}",
                 f"{s['final']['mAP50_95']:.3f}",
                 f"{s['last_mean']:.3f} ({s['last_range'][0]:.3f}-{s['last_range'][1]:.3f})",
                 f"{s['best']['mAP50']:.3f} ({s['best']['epoch']})",
                 f"{s['train_seconds'] / 60:.0f} min"]
        if per_class:
            cells[4:4] = [f"{s['final']['per_class_AP50'].get(c, float('nan')):.3f}" for c in classes]
        cells[4:4] = [f"{source_map(s['final'], source):.3f}" for source in sources]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + over_seeds(summaries, classes))


def over_seeds(summaries: list[dict], classes: list[str]) -> list[str]:
    """The second table: runs alike but for their seed, their final figures as mean (range); none when no two
    runs are alike."""
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        groups.setdefault(s["group"], []).append(s)
    if all(len(g) < 2 for g in groups.values()):
        return []

    def spread(values: list[float]) -> str:
        return f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    shown = classes if len(classes) > 1 else []  # one class: its AP is the mAP
    sources = shown_sources(summaries)
    header = ["strategy", "labels", "seeds", "mAP@0.5 (end)"] + [f"{source} mAP@0.5 (end)" for source in sources] + \
        [f"{c} AP@0.5 (end)" for c in shown] + ["mAP@0.5:0.95 (end)"]
    lines = ["", "Over seeds, mean (range):", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups.values():
        finals = [g["final"] for g in group]
        cells = [group[0]["strategy"], group[0]["labels"], ", ".join(str(g["seed"]) for g in group),
                 spread([f["mAP50"] for f in finals])]
        cells += [spread([source_map(f, source) for f in finals]) for source in sources]
        cells += [spread([f["per_class_AP50"].get(c, float("nan")) for f in finals]) for c in shown]
        cells.append(spread([f["mAP50_95"] for f in finals]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
