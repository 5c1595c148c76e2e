"""Peak memory of `ezclip tag` against the number of videos and their length.

    python benchmarks/tag_memory.py

Each case runs the whole tagging pipeline in one fresh process (random-weight ViT-B-32,
8 frames, batch 8, decoding in-process with --workers 0 so that one peak-RSS figure covers
decoding, the in-flight window, the model and the writer) and prints its peak resident
memory. Cases: 10 vs 100 short videos, and one 10 s vs one 5 min clip (320x240, 24 fps).
The figures should not grow with either. (With --workers N the decoding moves to spawned
processes; each holds only the clip it decodes.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, resource, sys
from pathlib import Path
from ezclip_cli.config import TagConfig
from ezclip_cli.model.spec import ModelSpec
from ezclip_cli.tag.run import run_tagging
folder, out, cache = sys.argv[1:4]
config = TagConfig(labels="running,jumping,swimming,cooking", workers=0, batch_size=8, device="cpu", cache_dir=cache)
spec = ModelSpec(backbone="ViT-B-32", pretrained="none")
s = run_tagging([folder], config, model=spec, output=Path(out), overwrite=True)
print(json.dumps({"ok": s.ok, "failed": s.failed,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def render(folder: Path, count: int, seconds: float, fps: int = 24) -> None:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for i in range(count):
        frames_total = int(seconds * fps)
        # Written in chunks of frames so rendering a 5 min clip needs little memory itself.
        write_long(folder / f"clip_{i:03d}.mp4", background, frames_total, fps)


def write_long(path: Path, background, frames_total: int, fps: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(frames_total):
            image = background.copy()
            x = int((index * 3) % 280)
            image[100:140, x : x + 40] = (255, 0, 0)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def measure(folder: Path, tmp: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(tmp / f"{folder.name}.csv"), str(tmp / "cache")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [
            ("10 videos x 4 s", 10, 4.0),
            ("100 videos x 4 s", 100, 4.0),
            ("1 video x 10 s", 1, 10.0),
            ("1 video x 5 min", 1, 300.0),
        ]
        rows = []
        for name, count, seconds in cases:
            folder = tmp / name.replace(" ", "_")
            render(folder, count, seconds)
            rows.append((name, measure(folder, tmp)))
        print("case               ok  peak RSS (MB)")
        for name, r in rows:
            print(f"{name:<18} {r['ok']:>3}  {r['peak_mb']:>13.0f}")
        print(f"ratio 100/10 videos: {rows[1][1]['peak_mb'] / rows[0][1]['peak_mb']:.3f}")
        print(f"ratio 5 min/10 s:    {rows[3][1]['peak_mb'] / rows[2][1]['peak_mb']:.3f}")


if __name__ == "__main__":
    main()
