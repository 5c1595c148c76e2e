"""The evaluation report's plots (PNG): per evaluation, the confusion matrix and the per-class accuracy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ezclip_cli.eval.metrics import as_percent

log = logging.getLogger(__name__)


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """PNG files: per evaluation of the trained models (of every model when there is none).

    matplotlib is the optional `plots` extra: without it there are no PNGs, said in one line (report.json and
    the table do not need it).
    """
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        log.warning("no plots: matplotlib is not installed (pip install 'ezclip[plots]')")
        return []
    kinds = {m["id"]: m["kind"] for m in report["models"]}
    plotted = [e for e in report["evaluations"] if kinds[e["model"]] == "ezclip"] or list(report["evaluations"])
    baseline = {e["unit"]: e for e in report["evaluations"] if kinds[e["model"]] == "clip"}
    paths = []
    for e in plotted:
        stem = f"{e['model']}_{e['unit']}"
        compare = baseline.get(e["unit"]) if kinds[e["model"]] == "ezclip" else None
        paths.append(plot_confusion(e, out / f"confusion_{stem}.png"))
        paths.append(plot_per_class(e, out / f"per_class_{stem}.png", compare))
    return paths


def plot_confusion(evaluation: dict[str, Any], path: Path) -> Path:
    """Row-normalised confusion matrix (true class down, predicted across)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(evaluation["confusion"], dtype=float)  # (K, K)
    K = len(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = min(max(5.0, 3.0 + 0.16 * K), 30.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(normalised, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    names = [c["class"] for c in evaluation["per_class"]]
    if K <= 20:  # counts in the cells while they fit
        for (i, j), count in np.ndenumerate(matrix.astype(int)):
            if count:
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if normalised[i, j] > 0.5 else "white",
                )
    if K <= 60:
        size = 8 if K <= 20 else 5
        ax.set_xticks(range(K), names, rotation=90, fontsize=size)
        ax.set_yticks(range(K), names, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top1 = evaluation["metrics"]["top1"]
    ax.set_title(
        f"{evaluation['model']} {evaluation['unit']}: top-1 {as_percent(top1)} ({evaluation['scored']} videos)"
    )
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_per_class(evaluation: dict[str, Any], path: Path, baseline: dict[str, Any] | None = None) -> Path:
    """Per-class top-1 accuracy, best class first; the frozen CLIP baseline beside it when scored."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = evaluation["per_class"]
    other = {c["class"]: c["accuracy"] for c in baseline["per_class"]} if baseline else {}
    order = sorted(range(len(rows)), key=lambda i: (-(rows[i]["accuracy"] or 0.0), i))
    K = len(rows)
    height = min(max(3.0, 1.5 + 0.22 * K), 60.0)
    fig = Figure(figsize=(8, height), dpi=80 if K > 100 else 100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(K)
    width = 0.4 if other else 0.8
    ours = [rows[i]["accuracy"] or 0.0 for i in order]
    ax.barh(y - (width / 2 if other else 0), ours, height=width, color="tab:blue", label=evaluation["model"])
    if other:
        assert baseline is not None  # other is empty without it
        theirs = [other.get(rows[i]["class"]) or 0.0 for i in order]
        ax.barh(y + width / 2, theirs, height=width, color="tab:orange", label=f"{baseline['model']} (frozen)")
    ax.set_yticks(y, [rows[i]["class"] for i in order], fontsize=8 if K <= 60 else 5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("top-1 accuracy")
    mean = evaluation["metrics"]["mean_class_accuracy"]
    ax.set_title(f"{evaluation['model']} {evaluation['unit']}: mean per-class {as_percent(mean)}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path
