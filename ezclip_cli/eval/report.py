"""The evaluation report: per-evaluation entries, the summary rows, report.json and the summary table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config.eval import REPORT_FORMAT, REPORT_VERSION
from ezclip_cli.eval.metrics import as_percent, compute_metrics, harmonic_mean, mean_std
from ezclip_cli.eval.plots import write_plots
from ezclip_cli.files import atomic_write

if TYPE_CHECKING:  # annotations only: the report needs neither torch nor the datasets
    from ezclip_cli.config.eval import EvalConfig
    from ezclip_cli.eval.plans import EvalModel, EvalUnit
    from ezclip_cli.eval.scoring import VideoResult


def evaluation_entry(
    spec: EvalModel,
    unit: EvalUnit,
    results: list[VideoResult],
    dropped: list[int],
    text_sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One evaluation of the report: a model on a unit, its metrics, per-class rows, confusion and failures."""
    classes = unit.videos.classes
    scored = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    metrics = compute_metrics([r.label for r in scored], [r.top for r in scored], len(classes))
    per_class = [
        {"class": name, "videos": n, "correct": c, "accuracy": _round(a)}
        for name, n, c, a in zip(
            classes, metrics["per_class_videos"], metrics["per_class_correct"], metrics["per_class_accuracy"]
        )
    ]
    for row, source in zip(per_class, text_sources or ()):
        row["text"] = source  # which class text scored it: "description" or "templates"
    return {
        "model": spec.id,
        "unit": unit.name,
        "split": unit.split,
        "fold": unit.fold,
        "part": unit.part,
        "num_classes": len(classes),
        "videos": len(unit.videos),
        "scored": len(scored),
        "failed": len(failed),
        "dropped": len(dropped),
        "metrics": {k: _round(metrics[k]) for k in ("top1", "top5", "mean_class_accuracy")},
        "per_class": per_class,
        "confusion": metrics["confusion"],
        "failures": [{"path": str(unit.videos.items[r.index][0]), "error": r.error} for r in failed],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def summarize(protocol: str, specs: Sequence[EvalModel], evaluations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per group of models: mean and std over its units (folds, subsets) and runs (seeds)."""
    groups: dict[str, list[EvalModel]] = {}
    for spec in specs:
        groups.setdefault(spec.group, []).append(spec)
    rows = []
    for group, members in groups.items():
        ids = [m.id for m in members]
        mine = [e for e in evaluations if e["model"] in ids]
        row: dict[str, Any] = {
            "group": group,
            "kind": members[0].kind,
            "shots": members[0].shots,
            "models": ids,
            "metrics": {},
            "harmonic_mean_of_means": None,
            "gain_over_clip": None,
        }
        if protocol == "base-to-novel":
            base = [
                next((e["metrics"]["top1"] for e in mine if e["model"] == i and e["part"] == "base"), None) for i in ids
            ]
            novel = [
                next((e["metrics"]["top1"] for e in mine if e["model"] == i and e["part"] == "novel"), None)
                for i in ids
            ]
            row["metrics"] = {
                "base_top1": mean_std(base),
                "novel_top1": mean_std(novel),
                "harmonic_mean": mean_std(harmonic_mean(b, n) for b, n in zip(base, novel)),
            }
            row["harmonic_mean_of_means"] = harmonic_mean(
                row["metrics"]["base_top1"]["mean"], row["metrics"]["novel_top1"]["mean"]
            )
        else:
            row["metrics"] = {
                name: mean_std(e["metrics"][name] for e in mine) for name in ("top1", "top5", "mean_class_accuracy")
            }
        row["metrics"] = {
            k: {s: (_round(v) if s != "values" else [_round(x) for x in v]) for s, v in stat.items()}
            for k, stat in row["metrics"].items()
        }
        row["harmonic_mean_of_means"] = _round(row["harmonic_mean_of_means"])
        rows.append(row)
    clip = next((r for r in rows if r["kind"] == "clip"), None)
    for row in rows:
        if clip is not None and row is not clip:
            row["gain_over_clip"] = {
                k: _round(row["metrics"][k]["mean"] - clip["metrics"][k]["mean"])
                for k in row["metrics"]
                if row["metrics"][k]["mean"] is not None and clip["metrics"][k]["mean"] is not None
            }
    return sorted(rows, key=lambda r: (r["kind"] == "clip", r["shots"] or 0))


def build_report(
    config: EvalConfig,
    units: Sequence[EvalUnit],
    specs: Sequence[EvalModel],
    evaluations: list[dict[str, Any]],
    notes: list[str],
    version: str,
    world_size: int,
) -> dict[str, Any]:
    failures: dict[str, str] = {}
    for e in evaluations:
        for f in e["failures"]:
            failures.setdefault(f["path"], f["error"])
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "ezclip_version": version,
        "protocol": config.protocol,
        "dataset": config.dataset,
        "root": str(config.root),
        "faithful": config.faithful,
        "notes": [
            *(
                [
                    "FAITHFUL MODE: the reference code's protocol choices (docs/model.md 9), for comparison with "
                    "published numbers; not the standard protocol"
                ]
                if config.faithful
                else []
            ),
            *notes,
            "accuracies divide by the scored videos; unreadable videos are failures, listed, and in no denominator",
            "std is the population standard deviation (ddof 0) over units (splits, subsets) and runs",
        ],
        "config": config.to_dict(),
        "run": {"world_size": world_size},
        "splits": [
            {
                "unit": u.name,
                "split": u.split,
                "fold": u.fold,
                "part": u.part,
                "num_classes": len(u.videos.classes),
                "videos": len(u.videos),
                "missing_in_split": u.videos.missing,
            }
            for u in units
        ],
        "models": [
            {
                "id": s.id,
                "kind": s.kind,
                "group": s.group,
                "checkpoint": s.checkpoint,
                "shots": s.shots,
                "seed": s.seed,
                **s.info,
            }
            for s in specs
        ],
        "evaluations": evaluations,
        "summary": summarize(config.protocol, specs, evaluations),
        "counts": {
            "evaluated": sum(e["scored"] + e["failed"] for e in evaluations),
            "scored": sum(e["scored"] for e in evaluations),
            "failed": sum(e["failed"] for e in evaluations),
            "dropped": sum(e["dropped"] for e in evaluations),
            "unreadable_videos": len(failures),
        },
        "failures": [{"path": p, "error": r} for p, r in sorted(failures.items())],
        "plots": [],
    }


# ---- outputs -----------------------------------------------------------------------------------------
def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """Write report.json and the plots (confusion matrix, per-class accuracy) of every trained model's
    evaluations into `out`; report.json lists the plots. Returns the files, report.json first."""
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    path = out / "report.json"
    text = json.dumps({**report, "plots": [p.name for p in plots]}, indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return [path, *plots]


_COLUMNS = {
    "base-to-novel": (("base_top1", "base"), ("novel_top1", "novel"), ("harmonic_mean", "HM")),
    "default": (("top1", "top-1"), ("top5", "top-5"), ("mean_class_accuracy", "mean class")),
}


def report_console(report: dict[str, Any], file: Any = None) -> None:
    """The summary as a rich table on stderr (mean +- std in %, scored and failed videos)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=file is None, file=file)
    columns = _COLUMNS.get(report["protocol"], _COLUMNS["default"])
    title = f"{report['dataset']} {report['protocol']}" + (" (FAITHFUL MODE)" if report["faithful"] else "")
    table = Table(title=title)
    table.add_column("model")
    for _, header in columns:
        table.add_column(header, justify="right")
    table.add_column("scored", justify="right")
    table.add_column("failed", justify="right")
    for row in report["summary"]:
        mine = [e for e in report["evaluations"] if e["model"] in row["models"]]
        cells = []
        for key, _ in columns:
            stat = row["metrics"].get(key, {})
            text = as_percent(stat.get("mean"))
            if stat.get("values") and len(stat["values"]) > 1:
                text += f" ± {100 * stat['std']:.1f}"
            if key == "harmonic_mean" and row["harmonic_mean_of_means"] is not None:
                text = f"{as_percent(row['harmonic_mean_of_means'])}"
            cells.append(text)
        table.add_row(row["group"], *cells, str(sum(e["scored"] for e in mine)), str(sum(e["failed"] for e in mine)))
        if row["gain_over_clip"]:
            gains = [row["gain_over_clip"].get(k) for k, _ in columns]
            table.add_row("  gain vs clip", *["" if g is None else f"{100 * g:+.1f}" for g in gains], "", "")
    console.print(table)
    counts = report["counts"]
    if counts["failed"]:
        console.print(f"{counts['unreadable_videos']} unreadable video(s), not scored: see 'failures' in report.json")
