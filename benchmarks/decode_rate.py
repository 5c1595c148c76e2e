"""Decoding alone, as `ezclip tag` does it: videos/s per decoder and number of worker processes.

    python benchmarks/decode_rate.py [--videos 24] [--workers 0,1,2] [--decoders decord,pyav]
                                     [--num-frames 8] [--size 240x320] [--frames 64] [--rounds 2]
                                     [--gop 250] [--gop-frames 500] [--gop-videos 6]

Renders N clips (H.264, 320x240, 64 frames by default), then for every (decoder, workers)
pair runs the tagging pipeline's own decoding stage (`decode_pool.DecodePool`: spawned worker
processes, the same in-flight window, frames sampled, resized and centre-cropped to 224)
over all clips and prints videos/s. Worker start-up is not timed: each pool first decodes
one round of warm-up clips. Pairs run in rounds, interleaved (every pair once per round),
and the best round counts, so all pairs see the same machine load. --workers 0 decodes in
the main process. Default workers: 0 up to the core count.

Then `--seek exact` against `--seek keyframe` on clips with long GOPs (a keyframe every 250
frames, as ordinary H.264): clips/s, frames decoded per clip, and how far the used timestamps
fall from the exact ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def render(folder: Path, count: int, size: tuple[int, int], frames: int) -> list[Path]:
    from tests.media import moving_ball_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    kinds = ["right", "left", "grow", "shrink"]
    return [
        write_video(folder / f"clip_{i:03d}.mp4", moving_ball_frames(frames, size, kinds[i % 4], seed=i), fps=16)
        for i in range(count)
    ]


def decode_all(pool, tasks: list, settings) -> tuple[float, int]:
    """Seconds to decode every task through `pool` (a DecodePool), and how many failed."""
    started = time.perf_counter()
    failed = sum(1 for item in pool.map(tasks, settings) if not isinstance(item, tuple) or isinstance(item[1], str))
    return time.perf_counter() - started, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--workers", default=None, help="comma list (default 0..core count)")
    parser.add_argument("--decoders", default=None, help="comma list (default: every installed one)")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--size", default="240x320", help="rendered clip HxW")
    parser.add_argument("--frames", type=int, default=64, help="frames per rendered clip")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval of the --seek clips (0: skip them)")
    parser.add_argument("--gop-frames", type=int, default=500, help="frames per --seek clip")
    parser.add_argument("--gop-videos", type=int, default=6, help="--seek clips")
    args = parser.parse_args()

    from ezclip_cli.tag.plan import Task, video_fingerprint
    from ezclip_cli.tag.pool import DecodePool
    from ezclip_cli.video.reader import DECODERS, DecodeSettings, _choose_decoder

    cores = os.cpu_count() or 1
    workers = [int(w) for w in args.workers.split(",")] if args.workers else list(range(cores + 1))
    # auto: what `tag` uses by default; torchcodec (a GPU decoder) only when named, as it needs CUDA
    names = args.decoders.split(",") if args.decoders else [d for d in DECODERS if d != "torchcodec"]
    decoders = []
    for name in names:
        try:
            _choose_decoder(name)
            decoders.append(name)
        except Exception as exc:  # not installed here: say so and measure the others
            print(f"{name}: skipped ({exc})", file=sys.stderr)
    height, width = (int(v) for v in args.size.split("x"))
    # Rows: (label, decoder). Every runtime preprocesses the same way (the decoder's scaler, then numpy).
    rows = [(name, name) for name in decoders]

    with tempfile.TemporaryDirectory() as tmp:
        videos = render(Path(tmp), args.videos, (height, width), args.frames)
        tasks = [Task(v, video_fingerprint(v)) for v in videos]
        pools = {w: DecodePool(w, window=max(2 * w, 1) + 8) for w in workers}
        try:
            for w, pool in pools.items():  # start-up and imports, untimed
                decode_all(
                    pool,
                    tasks[: max(w, 1) * 2],
                    DecodeSettings(args.num_frames, args.image_size, decoders[0]),
                )
            best: dict[tuple[str, int], float] = {}
            failures: dict[tuple[str, int], int] = {}
            for _ in range(args.rounds):
                for label, name in rows:
                    settings = DecodeSettings(args.num_frames, args.image_size, name)
                    for w, pool in pools.items():
                        seconds, failed = decode_all(pool, tasks, settings)
                        best[(label, w)] = min(best.get((label, w), float("inf")), seconds)
                        failures[(label, w)] = failed
        finally:
            for pool in pools.values():
                pool.close()

    print(
        f"{args.videos} clips {width}x{height}, {args.frames} frames, H.264; {args.num_frames} frames sampled, "
        f"resized + cropped to {args.image_size}; {cores} cores; best of {args.rounds} interleaved rounds"
    )
    print("decoder     " + "".join(f"{f'workers={w}':>12}" for w in workers) + "   (videos/s)")
    for label, _ in rows:
        cells = "".join(f"{args.videos / best[(label, w)]:12.1f}" for w in workers)
        failed = sum(failures[(label, w)] for w in workers)
        print(f"{label:<12}{cells}" + (f"   {failed} failed" if failed else ""))
    if args.gop:
        seek_section(args)


def seek_section(args: argparse.Namespace) -> None:
    """--seek exact vs keyframe on long-GOP clips: clips/s, frames decoded per clip, distance of the used times."""
    from ezclip_cli.tag.plan import Task, video_fingerprint
    from ezclip_cli.tag.pool import decode_task
    from ezclip_cli.video import pyav
    from ezclip_cli.video.reader import DecodeSettings
    from tests.media import moving_ball_frames, write_video

    decoded = {"frames": 0}
    advance = pyav.FrameCursor.advance

    def counting(self):  # every frame the decoder produced, kept or not
        decoded["frames"] += 1
        return advance(self)

    pyav.FrameCursor.advance = counting  # type: ignore[method-assign]
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clips = [
            write_video(
                Path(tmp) / f"gop_{i}.mp4",
                moving_ball_frames(args.gop_frames, (height, width), ("right", "left")[i % 2], seed=i),
                fps=25,
                keyframe_interval=args.gop,
            )
            for i in range(args.gop_videos)
        ]
        tasks = [Task(c, video_fingerprint(c)) for c in clips]
        stats: dict[str, dict[str, float]] = {}
        used: dict[str, list[tuple[float, ...]]] = {}
        for _ in range(args.rounds):
            for seek in ("exact", "keyframe"):
                settings = DecodeSettings(args.num_frames, args.image_size, "pyav", seek)
                decoded["frames"] = 0
                started = time.perf_counter()
                out = [decode_task(t, settings) for t in tasks]
                seconds = time.perf_counter() - started
                assert all(not isinstance(o, str) for o in out), out
                used[seek] = [o.timestamps for o in out]  # type: ignore[union-attr]
                rate = len(tasks) / seconds
                if rate > stats.get(seek, {}).get("rate", 0):
                    stats[seek] = {"rate": rate, "frames": decoded["frames"] / len(tasks)}
    pyav.FrameCursor.advance = advance  # type: ignore[method-assign]
    gaps = [abs(a - b) for ex, kf in zip(used["exact"], used["keyframe"]) for a, b in zip(ex, kf)]
    print(
        f"\n--seek on {args.gop_videos} clips {width}x{height}, {args.gop_frames} frames at 25 fps, a keyframe every "
        f"{args.gop} frames (the encoder adds some at scene cuts); PyAV in-process, best of {args.rounds} rounds"
    )
    print(f"{'seek':<10}{'clips/s':>10}{'frames decoded/clip':>22}")
    for seek in ("exact", "keyframe"):
        print(f"{seek:<10}{stats[seek]['rate']:>10.1f}{stats[seek]['frames']:>22.0f}")
    print(
        f"keyframe/exact clips/s: {stats['keyframe']['rate'] / stats['exact']['rate']:.2f}; used times from the exact "
        f"ones: mean {sum(gaps) / len(gaps):.2f} s, max {max(gaps):.2f} s"
    )


if __name__ == "__main__":
    main()
