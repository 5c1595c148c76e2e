"""Score `ezclip tag` output on the example clips: how many got the right top-1 label.

    python examples/score_tags.py TAGS.csv [--expect HITS]

The true class of a clip rendered by examples/render_clips.py is the first part of its file
name (`right_003.mp4` -> "a ball moving from left to right"). Prints one line to stderr; with
--expect, exits 1 when fewer clips than HITS got the right label (the quickstart's check).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # render_clips sits beside this script

from render_clips import CLASSES


def score(tags: Path) -> tuple[int, int]:
    """(clips whose top-1 label is their class, clips tagged) of a CSV written by `ezclip tag`."""
    with open(tags, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    hits = sum(row["label_1"] == CLASSES[Path(row["path"]).name.split("_")[0]] for row in rows)
    return hits, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tags", type=Path)
    parser.add_argument("--expect", type=int, help="fail unless at least this many clips are right")
    parser.add_argument("--model", default="the model", help="what produced the tags, for the message")
    args = parser.parse_args()
    hits, total = score(args.tags)
    print(f"ezclip example: {hits}/{total} held-out clips got the right top-1 label ({args.model})", file=sys.stderr)
    if args.expect is not None and hits < args.expect:
        print(f"ezclip example: expected at least {args.expect}/{total}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
