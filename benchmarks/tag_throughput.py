"""Throughput of `ezclip tag` against the model forward alone, measured side by side.

    python benchmarks/tag_throughput.py [--videos 24] [--model ViT-B-32] [--workers -1]

Renders N videos (320x240, 64 frames, H.264), then
  1. runs the full tagging pipeline (decoder worker processes, batching, JSONL writing) on them;
  2. decodes the same videos once up front and times only the model forward (video encoder
     + classifier + top-k) on those frames, with the same batch size;
and prints videos/s of each and their ratio. Both rates are steady state: they start after
the first batch (the pipeline: when its first batch of rows is written; the model alone:
after one batch that is not timed), so one-time costs (first-call kernel set-up, spawning
decoder workers, loading the model, text embeddings) count in neither; the whole-run rate
of the pipeline, set-up included, is printed as well. Random weights: no download.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def render(folder: Path, count: int) -> list[Path]:
    from tests.media import moving_ball_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    kinds = ["right", "left", "grow", "shrink"]
    return [
        write_video(folder / f"clip_{i:03d}.mp4", moving_ball_frames(64, (240, 320), kinds[i % 4], seed=i), fps=16)
        for i in range(count)
    ]


class RowClock(io.StringIO):
    """A stdout stand-in that notes when each result row is written."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def write(self, text: str) -> int:
        self.times += [time.perf_counter()] * text.count("\n")
        return super().write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--labels", default="hmdb51", help="label set (text embeddings are set-up, not measured)")
    args = parser.parse_args()

    import torch

    from ezclip_cli.config import TagConfig
    from ezclip_cli.data.labels import build_prompts, load_labelset
    from ezclip_cli.model.load import load_model, model_fingerprint
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.plan import Task, video_fingerprint
    from ezclip_cli.tag.pool import DecodedClip, decode_task
    from ezclip_cli.tag.predictors import TorchPredictor, build_classifier
    from ezclip_cli.tag.run import run_tagging
    from ezclip_cli.video.reader import DecodeSettings

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = render(folder / "videos", args.videos)
        config = TagConfig(
            labels=args.labels,
            batch_size=args.batch_size,
            workers=args.workers,
            device="cpu",
            cache_dir=str(folder / "cache"),
            output_format="jsonl",
        )
        rows = RowClock()
        summary = run_tagging(
            [str(folder / "videos")],
            config,
            model=ModelSpec(backbone=args.model, pretrained="none", num_frames=args.num_frames),
            stdout=rows,
        )
        first = args.batch_size - 1  # rows of the first batch are written together
        pipeline_rate = (len(rows.times) - 1 - first) / (rows.times[-1] - rows.times[first])

        model = load_model(None, args.model, "none", args.num_frames, device="cpu")
        labelset = load_labelset(args.labels)
        classifier = build_classifier(model, build_prompts(labelset), str(folder / "cache"), model_fingerprint(model))
        settings = DecodeSettings(args.num_frames, model.backbone.image_size)
        decoded = [decode_task(Task(v, video_fingerprint(v)), settings) for v in videos]
        clips = [d.pixels for d in decoded if isinstance(d, DecodedClip)]
        predictor = TorchPredictor(model, classifier, labelset.labels, 5, "cpu")
        scorer = predictor.scorer
        assert scorer is not None  # a label set was given
        scorer(predictor.embed(clips[: args.batch_size]))  # warm-up, as the pipeline's first batch is
        started = time.perf_counter()
        for i in range(0, len(clips), args.batch_size):
            scorer(predictor.embed(clips[i : i + args.batch_size]))
        model_rate = len(clips) / (time.perf_counter() - started)

    print(
        f"backbone {args.model} (random weights), T={args.num_frames}, batch {args.batch_size}, "
        f"{args.videos} videos 320x240x64, torch threads {torch.get_num_threads()}"
    )
    print(
        f"whole run incl. set-up:             {summary.ok / summary.seconds:7.3f} videos/s ({summary.seconds:.1f} s, "
        f"{summary.ok} ok, {summary.failed} failed)"
    )
    print(f"full tag pipeline (steady state):   {pipeline_rate:7.3f} videos/s")
    print(f"model forward alone (same frames):  {model_rate:7.3f} videos/s")
    print(f"ratio pipeline / model:             {pipeline_rate / model_rate:7.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
