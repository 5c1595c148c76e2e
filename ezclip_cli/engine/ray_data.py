"""Ray Data stages for video tagging: a clip decoder for CPU workers and a model class for (GPU) actors.

`ray.data.read_videos` yields one row per frame; a clip model wants T sampled frames per video (or
window). These two stages supply that, with tag's sampling and its one preprocessing:

    import ray
    from ezclip_cli.config import TagConfig
    from ezclip_cli.engine.ray_data import TagClips, decode_clips

    ds = ray.data.from_items([{"path": p} for p in paths])          # or any dataset with a path column
    ds = ds.map_batches(decode_clips, fn_kwargs={"num_frames": 8, "image_size": 224}, batch_size=8)
    ds = ds.map_batches(TagClips, fn_constructor_kwargs={"config": TagConfig(labels="k400"),
                        "checkpoint": "ezclip-b16-k400"}, batch_size=32, concurrency=2, num_gpus=1)
    ds.write_parquet("tags/")                                       # or write_lance, to_pandas, ...

`decode_clips` takes columns `path` and optionally `video_id`, `start`, `end` (seconds, NaN for a
whole video) and adds `pixels` (uint8 (T, 3, S, S) per row), `timestamps`, `duration` and `error`
("" when decoded): a bad video becomes an error row, never an exception, so one file cannot fail
the pipeline. `TagClips` loads its model once per actor and emits an Arrow table with tag's columns
(the columns of `-f parquet`: path, status, error, start, end, duration, labels, scores, num_frames,
timestamps, video_id, model_id, labels_id, settings_id), plus `embedding` (fixed-size float32 list)
with `embeddings=True`. Ray schedules, retries and applies backpressure; these stages hold no state
between batches beyond the model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.config import TagConfig
from ezclip_cli.tag.plan import Task, video_fingerprint
from ezclip_cli.tag.pool import DecodedClip, decode_task
from ezclip_cli.video.reader import DecodeSettings

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from ezclip_cli.tag.results import Stamp


def _seconds(value: Any) -> float | None:
    """A window bound from a batch column: None for a whole video (NaN or null)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def batch_tasks(batch: dict[str, np.ndarray]) -> list[Task]:
    """The tasks a batch names: its `path` column, with `video_id`, `start`, `end` where present."""
    paths = [str(p) for p in batch["path"]]
    ids = batch.get("video_id")
    starts, ends, durations = batch.get("start"), batch.get("end"), batch.get("task_duration")
    return [
        Task(
            Path(path),
            str(ids[i]) if ids is not None else video_fingerprint(Path(path)),
            _seconds(starts[i]) if starts is not None else None,
            _seconds(ends[i]) if ends is not None else None,
            _seconds(durations[i]) if durations is not None else None,
        )
        for i, path in enumerate(paths)
    ]


def decode_clips(
    batch: dict[str, np.ndarray], *, num_frames: int, image_size: int, decoder: str = "auto", seek: str = "exact"
) -> dict[str, np.ndarray]:
    """`map_batches` function: the batch's videos (windows) decoded to model-ready uint8 clips, or an error each.

    Every input column is kept; added: `video_id` (when missing), `pixels` (B, T, 3, S, S) uint8 (zeros
    for a failed row), `timestamps` (B, T) float64 (NaN-padded), `duration` float64 and `error` (str, "" = ok).
    Pixels are tag's for every runtime (the decoder's scaler, then numpy): no torch is imported here.
    """
    import numpy as np

    settings = DecodeSettings(num_frames, image_size, decoder, seek)
    tasks = batch_tasks(batch)
    pixels = np.zeros((len(tasks), num_frames, 3, image_size, image_size), dtype=np.uint8)
    stamps = np.full((len(tasks), num_frames), np.nan)
    durations = np.full(len(tasks), np.nan)
    errors = []
    for i, task in enumerate(tasks):
        decoded = decode_task(task, settings)
        if isinstance(decoded, str):
            errors.append(decoded)
            continue
        count = min(len(decoded.pixels), num_frames)
        pixels[i, :count] = decoded.pixels[:count]
        stamps[i, : len(decoded.timestamps)] = decoded.timestamps[:num_frames]
        durations[i] = decoded.duration
        errors.append("")
    out = dict(batch)
    out.update(
        video_id=np.asarray([t.video_id for t in tasks], dtype=object),
        pixels=pixels,
        timestamps=stamps,
        duration=durations,
        error=np.asarray(errors, dtype=object),
    )
    return out


class TagClips:
    """`map_batches` callable class: the model loaded once per actor; decoded clips in, tag's rows out (Arrow).

    `config` is tag's TagConfig (label set, top-k, scoring, runtime; a plain string is a label set);
    `checkpoint`, `model`, `pretrained` and `num_frames` name the model as `ezclip tag` flags do (a
    model name is downloaded once per node). The device is the actor's: CUDA when Ray gave it a GPU.
    """

    def __init__(
        self,
        config: TagConfig | str,
        checkpoint: str | Path | None = None,
        model: str | None = None,
        pretrained: str | None = None,
        num_frames: int = 8,
        embeddings: bool = False,
    ):
        from ezclip_cli.data.labels import build_prompts, labelset_fingerprint, load_labelset
        from ezclip_cli.model.scoring import scoring_id
        from ezclip_cli.model.spec import resolve_model
        from ezclip_cli.tag.results import Stamp
        from ezclip_cli.tag.resume import settings_id
        from ezclip_cli.tag.run import build_predictor, score_options

        self.config = TagConfig(labels=config) if isinstance(config, str) else config
        labelset = load_labelset(self.config.labels)
        prompts = build_prompts(labelset, self.config.templates or None, self.config.use_descriptions)
        spec = resolve_model(checkpoint, model, pretrained, num_frames)  # as `ezclip tag` resolves its flags
        self.predictor, self.settings, model_id = build_predictor(self.config, prompts, labelset.labels, spec, None)
        labels_id = scoring_id(labelset_fingerprint(prompts)[:16], score_options(self.config))
        self.stamp: Stamp = Stamp(model_id, labels_id, settings_id(self.config))
        self.embedding_dim: int | None = None
        if embeddings:  # known before the first batch, so a batch of failures has the column too
            import numpy as np

            size = self.settings.image_size
            blank = np.zeros((self.settings.num_frames, 3, size, size), dtype=np.uint8)
            self.embedding_dim = int(self.predictor.embed([blank]).shape[1])

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from ezclip_cli.tag.columnar import rows_table
        from ezclip_cli.tag.run import predict_batch

        tasks = batch_tasks(batch)
        pending: list[Any] = []
        for i, task in enumerate(tasks):
            error = str(batch["error"][i])
            if error:
                pending.append((task, error))
                continue
            stamps = batch["timestamps"][i]
            times = tuple(float(t) for t in stamps if t == t)  # NaN pads a short clip
            clip = DecodedClip(batch["pixels"][i], times, float(batch["duration"][i]))
            pending.append((task, clip))
        kept: dict[tuple[str, float | None], Any] = {}

        def sink(decoded: list[tuple[Task, DecodedClip]], vectors: np.ndarray) -> None:
            for (task, _), vector in zip(decoded, vectors):
                kept[(task.video_id, task.start)] = vector

        results = predict_batch(pending, self.predictor, self.stamp, sink if self.embedding_dim is not None else None)
        records = [r.to_record() for r in results]
        if self.embedding_dim is not None:
            for record, task in zip(records, tasks):
                vector = kept.get((task.video_id, task.start))
                record["embedding"] = None if vector is None else vector.tolist()
        return rows_table(records, self.embedding_dim)
