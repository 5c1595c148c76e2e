"""What `ezclip eval` runs: the protocols, the datasets and their test splits, and EvalConfig (docs/protocols.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ezclip_cli.errors import UsageError

PROTOCOLS = ("zero-shot", "base-to-novel", "few-shot", "closed-set")
REPORT_FORMAT = "ezclip-eval-report"
REPORT_VERSION = 1
TOP_K = 5  # top-5 needs 5 classes; with fewer, top-K is "top-all" (always 1.0)

ZERO_SHOT_DATASETS = ("hmdb51", "ucf101", "k600")
OFFICIAL_FOLDS = {"hmdb51": (1, 2, 3), "ucf101": (1, 2, 3)}
TEST_SPLITS = {"hmdb51": "test", "ucf101": "test", "k400": "val", "k600": "val", "ssv2": "val"}
HALVES_SPLITS = {"hmdb51": "trainval", "ucf101": "trainval"}  # whole official train list; others: "train"

# K600 is not a superset of K400 (labelsets/README.md). These 12 K400 classes live on in K600
# under a new name; the other 20 K400 names absent from K600 were dropped. "New in K600" is
# K600 minus K400 minus these renamed ones: 232 - 12 = 220 classes (the standard protocol).
# The reference took the plain string difference (232, docs/model.md 9.2), which scores renamed
# K400 classes as "unseen".
K600_RENAMED_FROM_K400: dict[str, str] = {
    "baby waking up": "waking up",
    "balloon blowing": "inflating balloons",
    "changing wheel": "changing wheel (not on bike)",
    "cooking sausages": "cooking sausages (not on barbeque)",
    "dying hair": "dyeing hair",
    "garbage collecting": "person collecting garbage",
    "hugging": "hugging (not baby)",
    "making bed": "making the bed",
    "opening bottle": "opening bottle (not wine)",
    "passing American football (not in game)": "passing american football (not in game)",
    "throwing ball": "throwing ball (not baseball or American football)",
    "tying tie": "tying necktie",
}
K600_NEW_CLASSES = 220
K600_SUBSETS = 3
K600_SUBSET_SIZE = 160


# ---- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    """How `ezclip eval` runs. Written into every report (``config``)."""

    protocol: str
    dataset: str
    root: str
    checkpoints: tuple[str, ...] = ()  # several: seeds (base-to-novel) or one per shots entry (few-shot)
    model: str | None = None  # plain CLIP when no checkpoint (loading.load_model)
    pretrained: str | None = None
    num_frames: int = 8  # plain CLIP only; a checkpoint knows its T
    shots: tuple[int, ...] = ()  # few-shot: K of each checkpoint (default: its training config's kshot)
    split: str | None = None  # default: the protocol's test split (TEST_SPLITS)
    fold: int | None = None  # hmdb51/ucf101 official split; zero-shot default = all three
    clips: int = 1  # temporal views: offsets inside each TSN segment
    crops: int = 1  # spatial views along the long side
    batch_size: int = 8  # videos per batch (all their views are scored together)
    workers: int = -1  # decoding processes; -1 = CPU count - 1 (at most 8); 0 = in-process
    templates: tuple[str, ...] = ()  # empty = the 16 reference templates
    descriptions: str | None = None  # description CSV (ours or the reference's GPT-3 files), one text per class
    allow_missing_descriptions: bool = False  # classes the CSV lacks use the templates (warned) instead of an error
    ensemble: str | None = None  # "embedding" (default) or "probability" (faithful): how templates combine
    raw_names: bool | None = None  # class names as written in prompts ("ApplyEyeMakeup"); faithful: true
    drop_last_batch: int | None = None  # leave unscored what a drop_last loader of this batch would over our list
    reference_drops: bool | None = None  # leave unscored the reference's own dropped videos (faithful: true)
    splits: str | None = None  # K600 zero-shot videos: "own" (--split), "published" (ViFi-CLIP), "reference" (faithful)
    baseline: str | None = None  # "clip": also score the frozen backbone (frame averaging)
    faithful: bool = False  # the reference's protocol choices (docs/model.md 9)
    decoder: str = "auto"
    device: str = "auto"
    cache_dir: str | None = None  # text-embedding cache

    def __post_init__(self) -> None:
        for name in ("checkpoints", "shots", "templates"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"unknown protocol '{self.protocol}'; available: {', '.join(PROTOCOLS)}")
        if self.clips < 1 or self.crops < 1 or self.batch_size < 1 or self.num_frames < 1:
            problems.append("clips, crops, batch_size and num_frames must be >= 1")
        if self.baseline not in (None, "clip"):
            problems.append(f"unknown baseline '{self.baseline}'; available: clip")
        if self.shots and self.protocol != "few-shot":
            problems.append("--shots is for the few-shot protocol")
        if self.shots and len(self.shots) != len(self.checkpoints):
            problems.append(
                f"{len(self.shots)} --shots for {len(self.checkpoints)} --checkpoint; give one K per checkpoint"
            )
        if any(k < 1 for k in self.shots):
            problems.append("shots must be >= 1")
        if self.fold is not None and self.fold < 1:
            problems.append("fold must be >= 1")
        from ezclip_cli.data.labels import template_problem

        problems += [p for p in map(template_problem, self.templates) if p]
        from ezclip_cli.config.faithful import ENSEMBLES, VIDEO_SPLITS, check_choice, faithful_eval_values

        problems += check_choice("ensemble", self.ensemble, ENSEMBLES)
        problems += check_choice("splits", self.splits, VIDEO_SPLITS)
        if self.splits in ("published", "reference") and (self.dataset != "k600" or self.protocol != "zero-shot"):
            problems.append(f"--splits {self.splits} is for k600 zero-shot (the published K600 video lists)")
        if self.splits == "published" and self.faithful:
            problems.append(
                "--splits published scores ViFi-CLIP's 3 subsets of 160 classes; --faithful scores the reference's "
                "232 classes at once (on its own list, --splits reference, or the root's --split with --splits own)"
            )
        if self.drop_last_batch is not None and self.drop_last_batch < 1:
            problems.append("drop_last_batch must be >= 1")
        if problems:
            raise UsageError("; ".join(problems))
        if self.faithful:  # every switch the flag stands for, unless set on its own
            for key, value in faithful_eval_values(self).items():
                object.__setattr__(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
