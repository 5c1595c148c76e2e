"""The library's face: what `import ezclip_cli` offers, above every folder (README, "Python").

Imports stay inside the functions, so `import ezclip_cli` costs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ezclip_cli.config import TagConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from ezclip_cli.progress import ProgressCallback
    from ezclip_cli.store.writer import StoreWriter
    from ezclip_cli.tag.predictors import VideoPredictor
    from ezclip_cli.tag.results import TagResult


def tag_videos(
    inputs: Sequence[str | Path],
    labels: str,
    *,
    checkpoint: str | Path | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
    save_embeddings: str | Path | None = None,
    progress: ProgressCallback | None = None,
    **options: object,
) -> list[TagResult]:
    """Library entry point: tag videos (files or folders) with a label set and return one result each.

    `labels` is a bundled label set name (k400, ucf101, ...), a file or comma-separated names;
    `options` are TagConfig's fields (top_k, window, stride, batch_size, workers, device, ...).
    Only `save_embeddings`, an embedding store, is written. Results come in input order; a video
    that cannot be read is a result with `status == "error"` and its reason, never an exception.
    """
    # Stamped as `tag -f jsonl` stamps its rows (CSV neutralisation is part of a CSV's settings id).
    config = TagConfig(labels=labels, output_format="jsonl", **options)  # type: ignore[arg-type]
    from ezclip_cli.tag.results import ResultList
    from ezclip_cli.tag.run import run_tagging

    collected = ResultList()
    run_tagging(
        [str(i) for i in inputs],
        config,
        checkpoint=Path(checkpoint) if checkpoint else None,
        model=model,
        pretrained=pretrained,
        num_frames=num_frames,
        writer=collected,
        progress=progress,
        open_store=_store_opener(save_embeddings, checkpoint, model, pretrained, num_frames),
    )
    return collected.results


def _store_opener(
    store: str | Path | None, checkpoint: str | Path | None, model: str | None, pretrained: str | None, num_frames: int
) -> Callable[[VideoPredictor, str, int], StoreWriter] | None:
    if not store:
        return None
    from ezclip_cli.store.writer import model_spec, store_opener

    return store_opener(Path(store), model_spec(checkpoint, model, pretrained, num_frames))
