"""The published split data: base/novel halves, K600 zero-shot subsets, K-shot training lists.

The files under ``labelsets/splits/`` are the lists every paper since ViFi-CLIP evaluates on
(their source is named in ``labelsets/splits/README.md``). They spell classes as published
("brush hair", "Pouring something into something"), so they are matched to a dataset's
canonical names (``brush_hair``) by ``normalise_name``: case, spaces/underscores and the
square brackets of SSv2 templates do not matter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ezclip_cli.data.text_files import read_text_file
from ezclip_cli.errors import DatasetError, UsageError

log = logging.getLogger(__name__)

# Published base/novel sizes (ViFi-CLIP's protocol, used by EZ-CLIP, arXiv 2312.08010).
HALF_SIZES: dict[str, tuple[int, int]] = {"k400": (200, 200), "hmdb51": (26, 25), "ucf101": (51, 50), "ssv2": (87, 87)}
K600_SUBSETS = 3
K600_SUBSET_SIZE = 160
KSHOT_PUBLISHED = "published"  # kshot_list value: the bundled list for the dataset, K and seed


def splits_dir() -> Path:
    """Folder of the published split files (inside the installed package, else the repo)."""
    from ezclip_cli.data.labels import labelset_dir

    return labelset_dir() / "splits"


def normalise_name(name: str) -> str:
    """The key two spellings of one class share: "Brush_Hair", "brush hair" -> "brush hair".

    Lower case, underscores as spaces, SSv2's "[something]" brackets removed, whitespace collapsed.
    """
    return " ".join(name.replace("[", "").replace("]", "").replace("_", " ").lower().split())


def match_names(names: Sequence[str], canonical: Sequence[str], where: str) -> list[str]:
    """Each of `names` as spelled in `canonical`; a name with no match is an error listing them all."""
    index: dict[str, str] = {}
    for name in canonical:
        key = normalise_name(name)
        if key in index and index[key] != name:
            raise DatasetError(f"classes '{index[key]}' and '{name}' are the same after normalising; rename one")
        index[key] = name
    unknown = [n for n in names if normalise_name(n) not in index]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise DatasetError(f"{where}: {len(unknown)} class name(s) not in the dataset's classes: {shown}")
    return [index[normalise_name(n)] for n in names]


def read_name_list(path: Path) -> list[str]:
    """One class name per line; blank lines and '#' comments skipped."""
    text = read_text_file(path, "split file", DatasetError)
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def published_halves(dataset: str, classes: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...], int] | None:
    """The published (base, novel) classes of `dataset` in `classes` spelling and order, and how many
    published classes `classes` lacks (0 for a complete dataset); None when no halves are published.

    A class of `classes` in neither published half is an error (not this dataset's class list).
    """
    if dataset not in HALF_SIZES:
        return None
    present = {normalise_name(c): c for c in classes}
    keys = []
    for part in ("base", "novel"):
        path = splits_dir() / f"{dataset}_{part}.txt"
        keys.append({normalise_name(n) for n in read_name_list(path)})
    base_keys, novel_keys = keys
    if base_keys & novel_keys or (len(base_keys), len(novel_keys)) != HALF_SIZES[dataset]:
        raise DatasetError(
            f"labelsets/splits/{dataset}_base.txt and _novel.txt are damaged: "
            f"want {HALF_SIZES[dataset]} distinct classes"
        )
    stray = [c for key, c in present.items() if key not in base_keys | novel_keys]
    if stray:
        shown = ", ".join(repr(c) for c in stray[:10])
        raise DatasetError(
            f"{len(stray)} {dataset} class(es) are in neither published half: {shown}; "
            f"is this the official {dataset} class list?"
        )
    absent = len((base_keys | novel_keys) - set(present))
    if absent:
        log.warning(
            "%s: %d of the published base/novel classes are not in this dataset's classes; "
            "the halves keep the %d present",
            dataset,
            absent,
            len(present),
        )
    return (
        tuple(c for c in classes if normalise_name(c) in base_keys),
        tuple(c for c in classes if normalise_name(c) in novel_keys),
        absent,
    )


def published_k600_subsets(classes: Sequence[str]) -> list[tuple[str, ...]]:
    """The 3 published 160-class K600 zero-shot subsets, in `classes` spelling and order."""
    subsets = []
    for number in range(1, K600_SUBSETS + 1):
        path = splits_dir() / f"k600_zero_shot_{number}.txt"
        chosen = set(match_names(read_name_list(path), classes, str(path)))
        subsets.append(tuple(c for c in classes if c in chosen))
    return subsets


def list_kshot_lists() -> list[str]:
    """Names of the bundled K-shot training lists (e.g. ``hmdb51_16shot``, ``k400_base_16shot_s1``)."""
    folder = splits_dir() / "kshot"
    return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []


def published_kshot_name(dataset: str, kshot: int, base_novel: bool, seed: int) -> str:
    """The bundled list a recipe uses: ``<dataset>_<K>shot`` or ``<dataset>_base_16shot_s<1-3>``."""
    if base_novel:
        if kshot != 16:
            raise UsageError(f"published base-to-novel lists have 16 shots, not {kshot}")
        name = f"{dataset}_base_16shot_s{(seed - 1) % 3 + 1}"  # seeds 1, 2, 3 as in the recipes
    else:
        name = f"{dataset}_{kshot}shot"
    if name not in list_kshot_lists():
        raise UsageError(f"no published K-shot list '{name}'; bundled: {', '.join(list_kshot_lists())}")
    return name


def load_kshot_list(spec: str) -> tuple[list[tuple[str, str]], str]:
    """(video stem, class name) rows of a bundled name or a file of ``video<TAB>class`` lines, and its source.

    The video is a file stem or a path (its folder and video extension are dropped); blank lines are skipped.
    """
    bundled = splits_dir() / "kshot" / f"{spec}.txt"
    path = bundled if spec in list_kshot_lists() else Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"K-shot list '{spec}' is neither a file nor a bundled list ({', '.join(list_kshot_lists())})")
    from ezclip_cli.video.reader import is_video_path

    rows = []
    for number, line in enumerate(read_text_file(path, "K-shot list", DatasetError).splitlines(), start=1):
        if not line.strip():  # no '#' comments: HMDB51 file names may start with '#'
            continue
        video, sep, name = line.partition("\t")
        if not sep or not video.strip() or not name.strip():
            raise DatasetError(f"{path}:{number}: want '<video><TAB><class>'")
        video_path = Path(video.strip())
        rows.append((video_path.stem if is_video_path(video_path.name) else video_path.name, name.strip()))
    if not rows:
        raise DatasetError(f"{path}: no videos listed")
    return rows, f"bundled:{spec}" if path == bundled else str(path)
