"""Evaluation metrics: top-1/top-5, per-class accuracy and confusion, mean/std over runs, harmonic mean."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ezclip_cli.config.eval import TOP_K


# ---- metrics -----------------------------------------------------------------------------------------
def compute_metrics(labels: Sequence[int], top: Sequence[Sequence[int]], num_classes: int) -> dict[str, Any]:
    """Top-1, top-5, mean per-class accuracy, per-class counts and the confusion matrix of scored videos.

    `top[i]` lists video i's predicted classes, best first. A class with no scored video has
    accuracy None and is left out of the mean per-class accuracy. Rows of the confusion
    matrix are true classes, columns top-1 predictions.
    """
    if len(labels) != len(top):
        raise ValueError(f"{len(labels)} labels but {len(top)} predictions")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    correct5 = 0
    for label, predicted in zip(labels, top):
        confusion[label, predicted[0]] += 1
        correct5 += label in tuple(predicted)[:TOP_K]
    videos = confusion.sum(axis=1)
    correct = np.diag(confusion)
    per_class = [None if n == 0 else float(c / n) for c, n in zip(correct, videos)]
    seen = [a for a in per_class if a is not None]
    scored = int(videos.sum())
    return {
        "top1": float(correct.sum() / scored) if scored else None,
        "top5": float(correct5 / scored) if scored else None,
        "mean_class_accuracy": float(np.mean(seen)) if seen else None,
        "per_class_videos": videos.tolist(),
        "per_class_correct": correct.tolist(),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }


def mean_std(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean and population standard deviation (ddof 0) of the values that exist."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"mean": None, "std": None, "values": []}
    return {"mean": float(np.mean(kept)), "std": float(np.std(kept)), "values": kept}


def harmonic_mean(base: float | None, novel: float | None) -> float | None:
    """2 b n / (b + n), the base-to-novel summary (0 when both are 0)."""
    if base is None or novel is None:
        return None
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)


def as_percent(value: float | None) -> str:
    """An accuracy as the report's table and plots print it: "12.3%", or "n/a" when there is none."""
    return "n/a" if value is None else f"{100 * value:.1f}%"
