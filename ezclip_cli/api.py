"""The library's face: what `import ezclip_cli` offers, above every folder (README, "Python").

Two ways in. `tag_videos(...)` is one call that loads the model, tags and forgets it. `load_tagger(...)`
loads the model once and returns a `Tagger` whose `tag(...)` and `embed(...)` can be called many times
(label sets' text embeddings are kept too), as whisper's `load_model()` / `transcribe()`.
Imports of torch stay inside the functions, so `import ezclip_cli` costs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import TagConfig
from ezclip_cli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.progress import ProgressCallback
    from ezclip_cli.tag.predictors import LoadedModel
    from ezclip_cli.tag.results import TagResult

PathLike = str | Path


def tag_videos(
    inputs: Sequence[PathLike],
    labels: str,
    *,
    checkpoint: PathLike | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
    save_embeddings: PathLike | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> list[TagResult]:
    """Tag videos (files or folders) with a label set; one TagResult per video (or window), in input order.

    Arguments:
        inputs: video files and folders (searched recursively).
        labels: a bundled label set (k400, ucf101, ...), a .txt/.csv file, or comma-separated names.
        checkpoint, model, pretrained, num_frames: the model, as `--checkpoint/--model/--pretrained/--num-frames`
            (nothing: the default EZ-CLIP model; `checkpoint="none"`: plain CLIP frame averaging).
        save_embeddings: also append every embedding to this store folder (the only file written).
        progress: `progress(done, total, failed, status)` after every finished video.
        options: TagConfig's fields (top_k, window, stride, batch_size, workers, device, score, ...).

    Returns the results; a video that cannot be read is a result with `status == "error"` and its reason.
    Raises UsageError (a bad option, named as the CLI flag), LabelsetError, CheckpointError.
    """
    from ezclip_cli.model.spec import resolve_model

    config = _config(labels, options)
    if config.runtime == "onnx" and checkpoint is None and model is None:
        raise UsageError("runtime='onnx' needs an exported bundle: model=DIR (see `ezclip export`)")
    spec = resolve_model(checkpoint, model, pretrained, num_frames)
    return _run(inputs, config, spec, spec, save_embeddings, progress)


def load_tagger(
    checkpoint: PathLike | None = None,
    *,
    model: str | None = None,
    pretrained: str | None = None,
    num_frames: int = 8,
    device: str = "auto",
) -> Tagger:
    """Load a model once for many `Tagger.tag(...)` / `Tagger.embed(...)` calls (PyTorch runtime).

    Arguments mean what `tag_videos`'s do; `device` is auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps.
    Raises CheckpointError (no such file or model name), UsageError (a device that is not there).
    """
    from ezclip_cli.model.spec import resolve_model
    from ezclip_cli.tag.predictors import LoadedModel

    spec = resolve_model(checkpoint, model, pretrained, num_frames)
    return Tagger(LoadedModel.load(spec, device), spec)


class Tagger:
    """A loaded model: tag and embed videos without loading it again (made by `load_tagger`)."""

    def __init__(self, loaded: LoadedModel, spec: ModelSpec):
        self._loaded = loaded
        self.spec = spec

    @property
    def model_id(self) -> str:
        """The id every row and store keys on (the same id `ezclip tag` writes)."""
        return self._loaded.model_id

    @property
    def device(self) -> str:
        return self._loaded.device

    @property
    def num_frames(self) -> int:
        return int(self._loaded.ezclip.num_frames)

    def __repr__(self) -> str:
        return f"Tagger({self.spec.describe()}, device={self.device!r})"

    def tag(
        self,
        inputs: Sequence[PathLike],
        labels: str,
        *,
        save_embeddings: PathLike | None = None,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> list[TagResult]:
        """Tag `inputs` with `labels`, as `tag_videos` does, on this tagger's model.

        A label set's text embeddings are encoded the first time it is used and kept for later calls.
        `options` are TagConfig's fields except `device` and `runtime` (fixed when the tagger was loaded).
        """
        for fixed in ("device", "runtime"):
            if fixed in options:
                raise UsageError(f"{fixed} is fixed when the tagger is loaded: load_tagger(..., {fixed}=...)")
        return _run(inputs, _config(labels, options), self._loaded, self.spec, save_embeddings, progress)

    def set_labels(self, labels: str, *, templates: Sequence[str] = (), use_descriptions: bool = True) -> None:
        """Encode a label set's prompts now (e.g. before a timed loop); later `tag` calls with it encode nothing."""
        from ezclip_cli.data.labels import build_prompts, load_labelset

        config = _config(labels, {"templates": tuple(templates), "use_descriptions": use_descriptions})
        prompts = build_prompts(load_labelset(labels), config.templates or None, config.use_descriptions)
        self._loaded.classifier(prompts, config.cache_dir)

    def embed(self, inputs: Sequence[PathLike], **options: Any) -> tuple[list[TagResult], np.ndarray]:
        """Video (or window) embeddings: (results, array) with one row per result, NaN for a video that failed.

        The vectors are the normalised embeddings tagging scores against the label set (and what `ezclip embed`
        stores). `options`: window, stride, scenes, batch_size, workers, decoder.
        """
        import numpy as np

        from ezclip_cli.tag.plan import plan_tasks
        from ezclip_cli.tag.pool import DecodePool
        from ezclip_cli.tag.predictors import TorchPredictor
        from ezclip_cli.tag.run import predict_tasks
        from ezclip_cli.tag.workers import resolve_workers
        from ezclip_cli.video.reader import DecodeSettings, list_videos

        config = _config("", options)
        ezclip = self._loaded.ezclip
        vectors: dict[tuple[str, float | None], np.ndarray] = {}

        def keep(decoded: list[Any], embeddings: np.ndarray) -> None:
            for (task, _), vector in zip(decoded, embeddings):
                vectors[(task.video_id, task.start)] = vector

        paths = list_videos([str(i) for i in inputs], keep_missing=True)
        workers = resolve_workers(config.workers, len(paths))
        pool = DecodePool(workers, window=max(2 * workers, 1) + config.batch_size)
        settings = DecodeSettings(ezclip.num_frames, ezclip.backbone.image_size, config.decoder, config.seek)
        predictor = TorchPredictor(ezclip, None, [], 1, self.device)
        try:
            results = list(
                predict_tasks(plan_tasks(paths, config), pool, settings, predictor, config.batch_size, sink=keep)
            )
        finally:
            pool.close()
        width = next(iter(vectors.values())).shape[-1] if vectors else 0
        missing = np.full(width, np.nan, dtype=np.float32)
        rows = [vectors.get((r.video_id, r.start), missing) for r in results]
        return results, (np.stack(rows).astype(np.float32) if rows else np.zeros((0, width), np.float32))


def load_store(store: PathLike) -> Any:
    """An embedding store (`tag --save-embeddings`, `ezclip embed`) read into memory: StoredEmbeddings."""
    from ezclip_cli.store.format import load_store as read

    return read(store)


def _config(labels: str, options: dict[str, Any]) -> TagConfig:
    """TagConfig from keyword options, with a one-line error for a name that is not one of its fields."""
    known = {f.name for f in fields(TagConfig)} - {"labels"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}; TagConfig takes: {', '.join(sorted(known))}")
    # Stamped as `tag -f jsonl` stamps its rows (CSV neutralisation is part of a CSV's settings id).
    return TagConfig(labels=labels, **{"output_format": "jsonl", **options})


def _run(
    inputs: Sequence[PathLike],
    config: TagConfig,
    model: ModelSpec | LoadedModel,
    spec: ModelSpec,
    save_embeddings: PathLike | None,
    progress: ProgressCallback | None,
) -> list[TagResult]:
    from ezclip_cli.store.writer import store_opener
    from ezclip_cli.tag.results import ResultList
    from ezclip_cli.tag.run import run_tagging

    opener = store_opener(Path(save_embeddings), spec) if save_embeddings else None
    collected = ResultList()
    run_tagging([str(i) for i in inputs], config, model=model, writer=collected, progress=progress, open_store=opener)
    return collected.results
