"""Leave unscored the videos the reference's drop_last loaders never scored (``--reference-drops``, faithful).

The reference drops the last ``n mod batch`` videos of its own shuffled list, with the batch of
the config that protocol and dataset ran with (``data.reference``; docs/protocols.md 7). Dropping
"the last videos of our list" would leave out other videos, and at another count, so ezclip
finds the reference's dropped videos in the unit by file stem and skips exactly those.
"""

from __future__ import annotations

from pathlib import Path

from ezclip_cli.data.reference import reference_loader
from ezclip_cli.eval.plans import EvalUnit


def reference_skips(protocol: str, dataset: str, unit: EvalUnit) -> tuple[list[int], str]:
    """Positions in `unit` the reference left unscored, and the report note saying why (or why none).

    Zero-shot HMDB51/UCF101 apply to official split 1 only (the reference's lists are split 1).
    """
    loader = reference_loader(protocol, dataset, unit.part)
    if loader is None:
        return [], (
            f"reference drops: the reference published no evaluation list for {protocol} {dataset}"
            f"{' ' + unit.part if unit.part else ''}; every video scored"
        )
    if unit.fold not in (None, 1):
        return [], f"reference drops: {unit.name} is not the reference's split 1; every video scored"
    wanted = {stem for stem, _ in loader.dropped}
    skips = [i for i, (path, _) in enumerate(unit.videos.items) if _stem(path) in wanted]
    missing = len(wanted) - len({_stem(unit.videos.items[i][0]) for i in skips})
    return skips, (
        f"reference drops ({unit.name}): {loader.list_videos} videos in {loader.list_file} at batch {loader.batch} "
        f"({loader.config}, {loader.loader}, drop_last) leave {len(wanted)} unscored; {len(skips)} of them are "
        f"in this root and left out" + (f", {missing} are not in it" if missing else "")
    )


def _stem(path: Path) -> str:
    return path.stem if path.suffix else path.name
