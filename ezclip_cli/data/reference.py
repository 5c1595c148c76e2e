"""The reference code's evaluation loaders as data: batch, list and the videos its drop_last left unscored.

The EZ-CLIP reference (github.com/Shahzadnit/EZ-CLIP) scores every evaluation with a
``DataLoader(batch_size=config.data.batch_size, drop_last=True)`` over its own list files, which
are in their own (shuffled) order. So the videos it never scored are the last ``n mod batch``
lines of each list, and they differ per protocol, dataset and half. ``labelsets/splits/`` ships
both facts (``labelsets/splits/README.md`` names the source commit):

- ``reference_eval_batches.tsv``: one row per (protocol, dataset, part) with the loader's script
  line, the config file it takes the batch from, the list file and its length;
- ``reference_dropped.tsv``: the dropped videos (file stem and class), in list order.

``ezclip eval --faithful`` (``--reference-drops``) leaves exactly these videos unscored
(docs/protocols.md 7).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache

from ezclip_cli.errors import DatasetError

NO_PART = "-"  # the part column of a protocol without halves


@dataclass(frozen=True)
class ReferenceLoader:
    """One evaluation loader of the reference code and what its drop_last left out."""

    protocol: str  # zero-shot, base-to-novel
    dataset: str
    part: str  # base, novel, or NO_PART
    loader: str  # script:line of the DataLoader
    config: str  # the reference config file giving the batch
    batch: int
    list_file: str  # the reference's video list (its own order)
    list_videos: int
    dropped: tuple[tuple[str, str], ...]  # (video stem, class) in list order

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.protocol, self.dataset, self.part)


def _rows(name: str) -> list[dict[str, str]]:
    from ezclip_cli.data.splits import splits_dir

    path = splits_dir() / name
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None


@lru_cache(maxsize=1)
def reference_loaders() -> dict[tuple[str, str, str], ReferenceLoader]:
    """Every reference evaluation loader by (protocol, dataset, part); a damaged table is an error."""
    dropped: dict[tuple[str, str, str], list[tuple[int, str, str]]] = {}
    for row in _rows("reference_dropped.tsv"):
        key = (row["protocol"], row["dataset"], row["part"])
        dropped.setdefault(key, []).append((int(row["position"]), row["video"], row["label"]))
    loaders = {}
    for row in _rows("reference_eval_batches.tsv"):
        key = (row["protocol"], row["dataset"], row["part"])
        batch, videos = int(row["batch"]), int(row["list_videos"])
        videos_dropped = sorted(dropped.pop(key, []))
        positions = [p for p, _, _ in videos_dropped]
        # drop_last leaves the last n mod batch lines: positions n - k + 1 .. n (1-based)
        if int(row["dropped"]) != videos % batch or positions != list(range(videos - videos % batch + 1, videos + 1)):
            raise DatasetError(f"labelsets/splits/reference_dropped.tsv disagrees with the loader table for {key}")
        loaders[key] = ReferenceLoader(
            *key,
            loader=row["loader"],
            config=row["config"],
            batch=batch,
            list_file=row["list"],
            list_videos=videos,
            dropped=tuple((video, label) for _, video, label in videos_dropped),
        )
    if dropped:
        raise DatasetError(f"labelsets/splits/reference_dropped.tsv has videos of unknown loaders: {sorted(dropped)}")
    return loaders


def reference_loader(protocol: str, dataset: str, part: str | None = None) -> ReferenceLoader | None:
    """The reference's loader for this evaluation, or None where the reference published none."""
    return reference_loaders().get((protocol, dataset, part or NO_PART))
