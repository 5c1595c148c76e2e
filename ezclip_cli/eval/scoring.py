"""Evaluation scoring: test-time views (N clips x M crops), batches, softmax averaged over views, torchrun."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ezclip_cli.config.eval import TOP_K
from ezclip_cli.data.video_lists import VideoList
from ezclip_cli.errors import VideoError
from ezclip_cli.video.transforms import eval_resize_crop

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip


# ---- test-time views ---------------------------------------------------------------------------------
class _ClipOffset(random.Random):
    """Stands in for the training RNG of video.sample_indices: clip c of N takes position
    (2c + 1) / 2N inside every TSN segment, so N clips are N evenly spaced temporal offsets."""

    clip = 0
    clips = 1

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + (2 * self.clip + 1) * (stop - start) // (2 * self.clips)


def clip_sampler(clip: int, clips: int) -> random.Random | None:
    """The `rng` argument of read_frames for clip `clip` of `clips` (None = segment centres, one clip)."""
    if clips == 1:
        return None
    sampler = _ClipOffset()
    sampler.clip, sampler.clips = clip, clips
    return sampler


def clip_frame_indices(num_source: int, num_frames: int, clip: int, clips: int) -> list[int]:
    """Frame indices of one temporal view (what read_frames decodes for it)."""
    from ezclip_cli.video.reader import sample_indices

    return sample_indices(num_source, num_frames, clip_sampler(clip, clips))


def spatial_crops(frames: torch.Tensor, image_size: int, crops: int) -> torch.Tensor:
    """uint8 (T,3,H,W) -> uint8 (M,T,3,S,S).

    One crop: short side to S*256/224 and the centre (transforms.eval_resize_crop, as `ezclip tag`).
    M crops: short side to S, then M squares evenly spaced along the long side, its two ends
    included (3 = left/centre/right, or top/centre/bottom for portrait video).
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    if crops == 1:
        return eval_resize_crop(frames, image_size).mul_(255).round_().to(torch.uint8)[None]
    x = frames
    if min(x.shape[-2:]) != image_size:
        x = F.resize(x, image_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    H, W = x.shape[-2:]
    long_side = max(H, W)
    starts = [round(j * (long_side - image_size) / (crops - 1)) for j in range(crops)]
    if W >= H:
        views = [x[..., :, s : s + image_size] for s in starts]
    else:
        views = [x[..., s : s + image_size, :] for s in starts]
    return torch.stack([v[..., :image_size, :image_size] for v in views]).contiguous()


def read_views(path: Path, num_frames: int, image_size: int, clips: int, crops: int, decoder: str) -> torch.Tensor:
    """All N x M views of one video: uint8 (N*M, T, 3, S, S), clip-major. Raises VideoError."""
    from ezclip_cli.video.reader import read_frames

    short_side = int(image_size * 256 / 224) if crops == 1 else image_size
    views = []
    for c in range(clips):
        clip = read_frames(path, num_frames, short_side=short_side, decoder=decoder, rng=clip_sampler(c, clips))
        array = clip.frames if clip.frames.flags.writeable else clip.frames.copy()
        frames = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)  # (T, 3, H, W)
        views.append(spatial_crops(frames, image_size, crops))
    return torch.cat(views)  # (N*M, T, 3, S, S)


class _ViewReader(torch.utils.data.Dataset):
    """Item i: {"index": i, "views": uint8 (V,T,3,S,S)} or {"index": i, "error": reason}. Picklable (spawn)."""

    def __init__(
        self, items: Sequence[tuple[Path, int]], num_frames: int, image_size: int, clips: int, crops: int, decoder: str
    ):
        self.items = list(items)
        self.settings = (num_frames, image_size, clips, crops, decoder)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.items[index][0]
        try:
            return {"index": index, "views": read_views(path, *self.settings)}
        except VideoError as exc:
            return {"index": index, "error": str(exc)}
        except Exception as exc:  # a decoder bug fails this video only
            return {"index": index, "error": f"could not decode: {type(exc).__name__}: {exc}".splitlines()[0]}


def _keep_list(batch: list[Any]) -> list[Any]:
    return batch


def _init_worker(_: int) -> None:
    torch.set_num_threads(1)  # the main process owns the cores for the model


# ---- scoring -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoResult:
    """One video's outcome: its top-k class indices (best first) and their averaged softmax scores."""

    index: int  # position in the unit's VideoList
    label: int
    top: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    error: str | None = None


def plan_batches(
    num_videos: int,
    batch_size: int,
    *,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    drop_last_batch: int | None = None,
    skip: Sequence[int] = (),
) -> tuple[list[list[int]], list[int]]:
    """This rank's batches of video indices (batch b goes to rank b mod world_size) and the dropped indices.

    Batches are cut from the whole list, so their composition does not depend on world_size.
    The last, shorter batch is kept unless `drop_last`. `drop_last_batch` N leaves out the videos a
    drop_last loader of batch N would leave out of this list, whatever `batch_size` is; `skip` leaves
    out the given positions (faithful: the reference's own dropped videos, eval.reference_drops).
    """
    from ezclip_cli.config.faithful import dropped_by_reference

    left_out = set(skip) | set(dropped_by_reference(num_videos, drop_last_batch) if drop_last_batch else ())
    dropped = sorted(left_out)
    order = [i for i in range(num_videos) if i not in left_out]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        dropped = batches.pop() + dropped
    return batches[rank::world_size], dropped


def score_videos(
    model: EZClip,
    classifier: torch.Tensor,
    videos: VideoList,
    *,
    clips: int = 1,
    crops: int = 1,
    batch_size: int = 8,
    workers: int = 0,
    decoder: str = "auto",
    device: str = "cpu",
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    progress: Any = None,
    drop_last_batch: int | None = None,
    templates: int = 1,
    skip: Sequence[int] = (),
) -> tuple[list[VideoResult], list[int]]:
    """Score this rank's share of `videos`: softmax over the classifier's K classes, averaged over
    the N*M views of each video. Returns (results sorted by index, indices dropped by drop_last).

    `templates` M > 1: the classifier holds M*K rows, template-major (faithful.template_classifier),
    and each template's softmax is averaged (the reference's ensemble)."""
    batches, dropped = plan_batches(
        len(videos),
        batch_size,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
        drop_last_batch=drop_last_batch,
        skip=skip,
    )
    if not batches:
        return [], dropped
    reader = _ViewReader(videos.items, model.num_frames, model.backbone.image_size, clips, crops, decoder)
    loader = torch.utils.data.DataLoader(
        reader,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_keep_list,
        # spawn: decord and torch deadlock in forked workers
        multiprocessing_context="spawn" if workers > 0 else None,
        worker_init_fn=_init_worker if workers > 0 else None,
    )
    mean = torch.tensor(model.backbone.mean, device=device).view(1, 1, 3, 1, 1)
    std = torch.tensor(model.backbone.std, device=device).view(1, 1, 3, 1, 1)
    k = min(TOP_K, classifier.shape[0] // templates)
    results: list[VideoResult] = []
    for batch in loader:
        good = [item for item in batch if "views" in item]
        for item in batch:
            if "error" in item:
                results.append(VideoResult(item["index"], videos.items[item["index"]][1], error=item["error"]))
        if good:
            probs = _average_softmax(
                model, classifier, [item["views"] for item in good], batch_size, mean, std, device, templates
            )
            scores, top = probs.topk(k, dim=-1)  # (B, k)
            for item, idx, sc in zip(good, top.tolist(), scores.tolist()):
                label = videos.items[item["index"]][1]
                results.append(VideoResult(item["index"], label, tuple(idx), tuple(round(s, 6) for s in sc)))
        if progress is not None:
            progress(len(batch), sum("error" in item for item in batch))
    return sorted(results, key=lambda r: r.index), dropped


def _average_softmax(
    model: EZClip,
    classifier: torch.Tensor,
    views: list[torch.Tensor],
    chunk: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: str,
    templates: int = 1,
) -> torch.Tensor:
    """(B videos of V views) -> (B, K): mean over views of softmax(logits) (and over templates, M > 1)."""
    from ezclip_cli.eval.scoring import class_probabilities

    video = torch.stack(views).to(device)  # (B, V, T, 3, S, S) uint8
    B, V = video.shape[:2]
    flat = video.flatten(0, 1)  # (B*V, T, 3, S, S)
    probs = []
    with torch.inference_mode(), torch.autocast("cuda", enabled=device.startswith("cuda")):
        for part in flat.split(chunk):
            x = (part.float() / 255 - mean) / std
            probs.append(class_probabilities(model(x, classifier), templates))  # (b, K)
    return torch.cat(probs).view(B, V, -1).mean(dim=1)  # (B, K)


# ---- torchrun ----------------------------------------------------------------------------------------
def gather_results(local: list[VideoResult], group: Any) -> list[VideoResult]:
    """Every rank's results (a distributed.ProcessGroup), on every rank, sorted by video index."""
    parts = group.gather([dataclasses.astuple(r) for r in local])
    return sorted((VideoResult(*row) for part in parts for row in part), key=lambda r: r.index)


def template_classifier(model: EZClip, prompts: list[list[str]], cache_dir: str | None, model_id: str) -> torch.Tensor:
    """One normalised text embedding per (template, class): (M*K, D), template-major.

    A class with one text (a description) repeats it in every template slot, so each slot's
    softmax covers all K classes.
    """
    import torch

    from ezclip_cli.tag.predictors import build_classifier

    count = max(len(texts) for texts in prompts)
    rows = [
        build_classifier(model, [[texts[m if len(texts) > 1 else 0]] for texts in prompts], cache_dir, model_id)
        for m in range(count)
    ]
    return torch.cat(rows)  # (M*K, D)


def class_probabilities(logits: torch.Tensor, templates: int = 1) -> torch.Tensor:
    """(B, M*K) logits -> (B, K) probabilities: the softmax of each template's K logits, averaged."""
    if templates == 1:
        return logits.float().softmax(dim=-1)
    B = logits.shape[0]
    return logits.float().view(B, templates, -1).softmax(dim=-1).mean(dim=1)
