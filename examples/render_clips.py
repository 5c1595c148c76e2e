"""Render the demo's example clips: a ball moving right, moving left, growing, shrinking.

    python examples/render_clips.py OUT_DIR [--train 48] [--heldout 16]

Writes OUT_DIR/train/*.mp4 with OUT_DIR/train.txt (`path<TAB>label`, the list format of
`ezclip train --train-list`), OUT_DIR/heldout/*.mp4 (clips never trained on) and
OUT_DIR/labels.txt (one label per line, for `ezclip tag --labels`). 32x32 px, 16 frames,
random colour and ball size, static noise background: seconds to render, a few KB each.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media import moving_ball_frames, write_video  # noqa: E402  (the repo's clip renderer)

CLASSES = {
    "right": "a ball moving from left to right",
    "left": "a ball moving from right to left",
    "grow": "a ball growing bigger",
    "shrink": "a ball shrinking smaller",
}


def render(out: Path, split: str, per_class: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    (out / split).mkdir(parents=True, exist_ok=True)
    lines = []
    for direction, label in CLASSES.items():
        for i in range(per_class):
            colour = tuple(rng.randint(120, 255) for _ in range(3))
            frames = moving_ball_frames(
                16, 32, direction, radius=rng.uniform(0.2, 0.3), color=colour, seed=rng.randrange(10**6)
            )
            name = f"{split}/{direction}_{i:03d}.mp4"
            write_video(out / name, frames)
            lines.append(f"{name}\t{label}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=48, help="training clips per class")
    parser.add_argument("--heldout", type=int, default=16, help="held-out clips per class")
    args = parser.parse_args()
    if args.train:  # --train 0: only the held-out clips (examples/quickstart.sh tags them)
        train = render(args.out, "train", args.train, seed=1)
        (args.out / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    render(args.out, "heldout", args.heldout, seed=2)
    (args.out / "labels.txt").write_text("\n".join(CLASSES.values()) + "\n", encoding="utf-8")
    print(f"rendered {4 * args.train} training and {4 * args.heldout} held-out clips into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
