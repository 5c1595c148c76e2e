"""What one call costs, measured side by side in one run (README, "Performance").

    python benchmarks/startup.py [--rounds 3] [--skip-k400]

Rows (wall time of fresh processes, best of --rounds, caches warm after a first untimed run):
  import torch, open_clip        `python -c "import torch, open_clip"`: the floor any call pays
  tag, one video                 `ezclip tag one.mp4 --labels L` with the shipped tiny checkpoint, default options
  tag, one video, --runtime onnx the same through its exported bundle (onnxruntime + numpy, no torch)
  ezclip --help                  the CLI's own start-up
and, unless --skip-k400, the first-use prompt encoding of the k400 label set (400 labels x 16 templates)
with a ViT-B/16 of random weights, cache cold: the minutes the progress line now accounts for.
Ratios are to the import row of the same run, so they hold on a loaded machine too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"


def wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds


def best(command: list[str], env: dict[str, str], rounds: int) -> float:
    wall(command, env)  # warm: caches, page cache, .pyc files
    return min(wall(command, env) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-k400", action="store_true", help="leave out the first-use k400 encoding (minutes)")
    args = parser.parse_args()

    from tests.media import moving_ball_frames, write_video

    python = sys.executable
    ezclip = [python, "-m", "ezclip_cli"]
    with tempfile.TemporaryDirectory(prefix="ezclip-startup-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "EZCLIP_CACHE": str(root / "cache"), "PYTHONPATH": str(REPO)}
        clip = write_video(root / "one.mp4", moving_ball_frames(32, (240, 320), "right"))
        bundle = root / "bundle"
        subprocess.run(
            [*ezclip, "export", "-c", str(MODEL), "-o", str(bundle), "-l", "running,jumping,swimming", "-q"],
            env=env,
            check=True,
            capture_output=True,
        )
        rows: list[tuple[str, float]] = [
            ("import torch, open_clip", best([python, "-c", "import torch, open_clip"], env, args.rounds)),
            (
                "tag, one video",
                best(
                    [*ezclip, "tag", str(clip), "-l", "running,jumping,swimming", "-c", str(MODEL), "-q"],
                    env,
                    args.rounds,
                ),
            ),
            (
                "tag, one video, --runtime onnx",
                best(
                    [*ezclip, "tag", str(clip), "-l", "running,jumping,swimming", "--model", str(bundle)]
                    + ["--runtime", "onnx", "-q"],
                    env,
                    args.rounds,
                ),
            ),
            ("ezclip --help", best([*ezclip, "--help"], env, args.rounds)),
        ]
        if not args.skip_k400:
            command = [*ezclip, "tag", str(clip), "-l", "k400", "--model", "ViT-B-16", "--pretrained", "none", "-q"]
            rows.append(("first k400 run, ViT-B/16 (cold text cache)", wall(command, env)))
            rows.append(("second k400 run (text cache warm)", wall(command, env)))
    floor = rows[0][1]
    print(f"{'call':<46} {'seconds':>8} {'x import':>9}")
    for name, seconds in rows:
        print(f"{name:<46} {seconds:>8.2f} {seconds / floor:>9.2f}")


if __name__ == "__main__":
    main()
