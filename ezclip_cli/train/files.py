"""The run directory rank 0 writes: config.yaml, checkpoints, metrics.jsonl, train.log and curves.png."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import TrainConfig, dump_yaml
from ezclip_cli.files import atomic_write

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip

log = logging.getLogger("ezclip_cli.train")  # one logger name for the whole run, as train.log has always shown


class RunFiles:
    """Everything rank 0 writes into the run directory."""

    def __init__(self, out: Path, main: bool):
        self.out, self.main = out, main
        self.last, self.best = out / "last.ezclip", out / "best.ezclip"
        self.state = out / "last.state.safetensors"
        self.metrics = out / "metrics.jsonl"
        self.handler: logging.Handler | None = None
        self.saved_level: int | None = None

    def open_log(self) -> None:
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.out / "train.log", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.INFO)
        package = logging.getLogger("ezclip_cli")
        package.addHandler(self.handler)
        if package.getEffectiveLevel() > logging.INFO:  # the run log is complete even when stderr is quiet
            self.saved_level = package.level
            package.setLevel(logging.INFO)

    def close_log(self) -> None:
        if self.handler is not None:
            package = logging.getLogger("ezclip_cli")
            package.removeHandler(self.handler)
            self.handler.close()
            if self.saved_level is not None:
                package.setLevel(self.saved_level)

    def note(self, message: str) -> None:
        """A line for train.log only (not stderr)."""
        if self.handler is not None:
            self.handler.handle(logging.LogRecord(log.name, logging.INFO, __file__, 0, message, None, None))

    def write_config(self, config: TrainConfig) -> None:
        if self.main:
            dump_yaml(config.to_dict(), self.out / "config.yaml")

    def write_checkpoint(
        self, model: EZClip, extra: dict[str, Any], write_state: Callable[[Path], None], best: bool
    ) -> None:
        """The state file first, then the checkpoint; both carry one token, so resume spots a torn pair."""
        from ezclip_cli.model.checkpoint import save_checkpoint

        if not self.main:
            return
        write_state(self.state)
        save_checkpoint(self.last, model, extra=extra)
        if best:
            atomic_write(self.best, lambda tmp: shutil.copyfile(self.last, tmp))

    def write_curves(self) -> Path | None:
        if not self.main:
            return None
        return plot_curves(self.metrics, self.out / "curves.png")

    def append_metrics(self, row: dict[str, Any]) -> None:
        if self.main:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """On resume, forget rows a crashed run logged after its last checkpoint."""
        if self.main and self.metrics.is_file():
            rows = [line for line in self.metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
            kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
            self.metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(metrics: str | Path, out: str | Path) -> Path | None:
    """Loss parts, lr and validation accuracy against the step, as a PNG (Agg, no display needed).

    None without matplotlib (the optional `plots` extra): metrics.jsonl holds the same numbers.
    """
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        log.warning("no curves.png: matplotlib is not installed (pip install 'ezclip[plots]')")
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(metrics)
    steps = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_top1" in r]
    if not steps:
        return None
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_ax, lr_ax, val_ax = figure.subplots(1, 3)
    x = [r["step"] for r in steps]
    for key in ("loss", "kl", "motion"):
        loss_ax.plot(x, [r[key] for r in steps], label=key)
    loss_ax.set(title="training loss", xlabel="step")
    loss_ax.legend()
    lr_ax.plot(x, [r["lr"] for r in steps])
    lr_ax.set(title="learning rate", xlabel="step")
    if vals:
        for key in ("val_top1", "val_top5"):
            val_ax.plot([r["step"] for r in vals], [r[key] for r in vals], marker="o", label=key)
        val_ax.legend()
    else:
        val_ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=val_ax.transAxes)
    val_ax.set(title="validation accuracy", xlabel="step", ylim=(0, 1.02))
    out = Path(out)
    atomic_write(out, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    return out
