"""`tag --engine ray` against the plain pipeline on the same clips, side by side in one run.

    python benchmarks/ray_scaling.py [--videos 64] [--size 240x320] [--frames 64] [--rounds 2]
                                     [--model configs/backbones/tiny-vit.json] [--cpus N]

Renders N clips (H.264, 320x240, 64 frames by default), starts one local Ray (`ray.init`, timed
on its own: a cluster is started once, not per run), then in interleaved rounds tags every clip
(a) with the plain pipeline (`run_tagging`: CPU-count - 1 decoding processes, the model in the
main process) and (b) with the Ray engine (`run_ray_tagging`: the same number of decoding tasks
and one model actor), each from start to finish, model loading and Ray's actor start-up included.
The best round of each counts. With the tiny random-weight backbone the model is nearly free, so
decoding is the wall, as it is on a GPU; that is also where Ray's overhead shows most.

Prints clips/s of both, their ratio (Ray / plain), the ray.init cost, the decoding rate of one
core (Ray's decode stage alone, one task at a time), and from it the decoding cores that feed
one GPU at 1,000 clips/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LABELS = "moving right,moving left,growing,shrinking"


def render(folder: Path, count: int, size: tuple[int, int], frames: int) -> list[Path]:
    from tests.media import moving_ball_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    kinds = ["right", "left", "grow", "shrink"]
    return [
        write_video(folder / f"clip_{i:03d}.mp4", moving_ball_frames(frames, size, kinds[i % 4], seed=i), fps=16)
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--size", default="240x320", help="HxW of the rendered clips")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "configs/backbones/tiny-vit.json"))
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs given to the local Ray")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))

    import ray

    from ezclip_cli.config import TagConfig
    from ezclip_cli.engine.ray_data import decode_clips
    from ezclip_cli.engine.ray_run import RaySizing, run_ray_tagging
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.results import ResultList
    from ezclip_cli.tag.run import run_tagging
    from ezclip_cli.tag.workers import default_workers

    workers = default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EZCLIP_CACHE"] = str(Path(tmp) / "cache")
        paths = render(Path(tmp) / "clips", args.videos, (height, width), args.frames)
        inputs = [str(Path(tmp) / "clips")]
        config = TagConfig(labels=LABELS, top_k=3, batch_size=8, workers=workers, output_format="jsonl")
        spec = ModelSpec(backbone=args.model, pretrained="none", num_frames=8)

        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - started

        best = {"plain": 0.0, "ray": 0.0}
        for _ in range(args.rounds):
            begin = time.perf_counter()
            summary = run_tagging(inputs, config, model=spec, writer=ResultList())
            assert summary.ok == len(paths), summary
            best["plain"] = max(best["plain"], len(paths) / (time.perf_counter() - begin))
            begin = time.perf_counter()
            sizing = RaySizing(decode_workers=workers, model_workers=1, decode_batch=4)
            summary = run_ray_tagging(inputs, config, sizing, spec, writer=ResultList())
            assert summary.ok == len(paths), summary
            best["ray"] = max(best["ray"], len(paths) / (time.perf_counter() - begin))

        # One core's decoding rate: Ray's decode stage alone, one task at a time, after a warm-up task.
        items = [{"path": str(p)} for p in paths]
        kwargs = {"num_frames": 8, "image_size": 224}
        decode = ray.data.from_items(items[:4]).map_batches(decode_clips, fn_kwargs=kwargs, batch_size=4)
        decode.materialize()
        begin = time.perf_counter()
        decode = ray.data.from_items(items, override_num_blocks=len(items) // 4)
        decode = decode.map_batches(
            decode_clips, fn_kwargs=kwargs, batch_size=4, compute=ray.data.TaskPoolStrategy(size=1)
        )
        decoded = decode.drop_columns(["pixels"]).count()
        per_core = decoded / (time.perf_counter() - begin)
        ray.shutdown()

    print(f"clips: {len(paths)} ({height}x{width}, {args.frames} frames), {os.cpu_count()} cores, model {args.model}")
    print(f"ray.init (local, {args.cpus} CPUs): {init_seconds:.1f} s, once per cluster")
    print(f"plain tag ({workers} decoding processes + model): {best['plain']:.1f} clips/s")
    print(f"tag --engine ray ({workers} decode tasks + 1 model actor): {best['ray']:.1f} clips/s")
    print(f"ratio Ray / plain: {best['ray'] / best['plain']:.2f}")
    print(f"decoding on one core (8 frames sampled, resized to 224): {per_core:.1f} clips/s")
    print(f"decoding cores to feed one GPU at 1,000 clips/s: {1000 / per_core:.0f}")


if __name__ == "__main__":
    main()
