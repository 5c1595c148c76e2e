"""`ezclip tag --engine ray`: the options that size a Ray run, and the call into engine/ray_run.py.

Kept apart from cli/tag.py so that command only gains its flags and one branch. Nothing here
imports Ray: `ezclip --help` and plain `tag` runs never load it.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from ezclip_cli.cli.options import fail, make_progress


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOpt = typer.Option(
    Engine.local,
    "--engine",
    help="local: decode in worker processes here; ray: a Ray Data pipeline (CPU decoders feeding model actors) "
    "on the cluster at --ray-address, or a local one (pip install 'ezclip[ray]').",
)
RayAddressOpt = typer.Option(
    None,
    "--ray-address",
    metavar="ADDRESS",
    help="With --engine ray: the cluster to join ('auto', host:6379, ray://host:10001); default $RAY_ADDRESS, "
    "else a local cluster on this machine.",
)
DecodeWorkersOpt = typer.Option(
    None, "--decode-workers", min=1, help="With --engine ray: decoding tasks at once (default: as Ray scales them)."
)
ModelWorkersOpt = typer.Option(1, "--model-workers", min=1, help="With --engine ray: model actors (one model each).")
GpusPerWorkerOpt = typer.Option(
    0.0, "--gpus-per-worker", min=0.0, help="With --engine ray: GPUs per model actor (0 = CPU; 0.5 = two per GPU)."
)


def refuse_ray_flags(engine: Engine, save_embeddings: Path | None, from_embeddings: Path | None) -> None:
    """The tag flags `--engine ray` does not take, refused before any work."""
    if engine is Engine.ray and (save_embeddings is not None or from_embeddings is not None):
        fail("--engine ray writes rows only: --save-embeddings and --from-embeddings need --engine local", 2)


def tag_on_ray(
    inputs: list[str],
    config: Any,
    spec: Any,
    *,
    ray_address: str | None,
    decode_workers: int | None,
    model_workers: int,
    gpus_per_worker: float,
    output: Path | None,
    overwrite: bool,
    quiet: bool,
    progress_interval: float | None,
) -> None:
    """Run `tag` on Ray and exit as `tag` does: 0 when every video was tagged, 1 when some failed."""
    from ezclip_cli.engine.ray_run import RaySizing, run_ray_tagging

    sizing = RaySizing(ray_address, decode_workers, model_workers, gpus_per_worker, max(1, min(config.batch_size, 8)))
    unit = "windows" if config.window or config.scenes else "videos"
    summary = run_ray_tagging(
        inputs,
        config,
        sizing,
        spec,
        output=output,
        overwrite=overwrite,
        stdin=sys.stdin,
        progress=make_progress("tagging", unit, quiet, progress_interval),
    )
    raise typer.Exit(1 if summary.failed else 0)
