"""Training defaults that follow the user's data: horizontal flips and how often to validate.

Flips. A horizontally mirrored "sliding left to right" clip is a "sliding right to left" clip, so
flip augmentation on a label set that names such directions teaches half of the augmented clips
the wrong label. Flips are therefore off by default when the label set is direction-sensitive:
a benchmark known to be (SSv2, whose templates are built around directions: "Pushing something
from left to right"), or any label with a word in `MIRROR_REVERSED_WORDS`.

Validation. Validating after every epoch is the reference's habit; on a small dataset an epoch
is a few steps and a full validation pass then costs more than the training between two of
them (training is bound by decoding clips, and validation decodes as many per clip). By default
validation therefore runs every `auto_eval_every` epochs: the fewest epochs that keep the clips
validation decodes under `VALIDATION_SHARE` of all clips decoded; large benchmarks (validation set
at most a quarter of the training set) still validate every epoch. The last epoch always validates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Words naming a direction that a horizontal mirror turns into its opposite. Hyphenated and
# CamelCase forms are split into words first ("counter-clockwise" and "TurnLeft" match).
# Vertical directions (up, down) and depth (towards, away) survive a horizontal mirror.
MIRROR_REVERSED_WORDS = frozenset(
    {
        "left",
        "right",
        "leftward",
        "leftwards",
        "rightward",
        "rightwards",
        "leftmost",
        "rightmost",
        "lefthand",
        "righthand",
        "lefthanded",
        "righthanded",
        "leftside",
        "rightside",
        "clockwise",
        "counterclockwise",
        "anticlockwise",
        "contraclockwise",
        "widdershins",
    }
)

# Benchmarks whose label sets are direction-sensitive as a whole, by name.
DIRECTION_SENSITIVE_DATASETS = frozenset({"ssv2"})

VALIDATION_SHARE = 0.2  # at most this share of all decoded clips goes to validation (default schedule)

_WORD = re.compile(r"[a-z]+")


def label_words(label: str) -> list[str]:
    """Lower-case words of a label, with CamelCase, underscores, hyphens and digits as separators."""
    from ezclip_cli.data.labels import label_to_text

    return _WORD.findall(label_to_text(label).lower())


def mirror_reversed_words(labels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The labels that name a direction a horizontal mirror reverses, each with the words found."""
    found: dict[str, tuple[str, ...]] = {}
    for label in labels:
        words = tuple(dict.fromkeys(w for w in label_words(label) if w in MIRROR_REVERSED_WORDS))
        if words:
            found[label] = words
    return found


@dataclass(frozen=True)
class FlipChoice:
    """Whether training flips clips horizontally, and the log line that explains a default or a risk."""

    flip: bool
    message: str | None = None  # INFO when flips were turned off automatically
    warning: str | None = None  # WARNING when flips were asked for on a direction-sensitive label set


def choose_flip(requested: bool | None, dataset: str | None, classes: Sequence[str]) -> FlipChoice:
    """Flips on unless the label set is direction-sensitive; `requested` (--flip/--no-flip) wins."""
    found = mirror_reversed_words(classes)
    if dataset in DIRECTION_SENSITIVE_DATASETS:
        why = f"{dataset} labels are direction-sensitive"
    elif found:
        label, words = next(iter(found.items()))
        others = f" and {len(found) - 1} more" if len(found) > 1 else ""
        why = (
            f"{len(found)} of {len(classes)} labels name a direction that a mirror reverses "
            f"('{label}': {', '.join(words)}{others})"
        )
    else:
        return FlipChoice(True if requested is None else requested)
    if requested is None:
        return FlipChoice(False, message=f"horizontal flips off: {why}; --flip turns them on")
    if requested:
        return FlipChoice(
            True, warning=f"--flip on a direction-sensitive label set: {why}, so mirrored clips contradict their labels"
        )
    return FlipChoice(False)


def auto_eval_every(train_clips_per_epoch: int, val_clips: int, share: float = VALIDATION_SHARE) -> int:
    """Epochs between validations so that validation decodes at most `share` of all clips decoded.

    With k epochs between validations the share is V / (k * N + V) for N training clips per epoch
    and V validation clips; the smallest k >= 1 with a share <= `share` is returned.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    if val_clips <= 0:
        return 1
    need = val_clips * (1 - share) / (share * max(train_clips_per_epoch, 1))
    return max(1, math.ceil(need - 1e-9))  # the epsilon keeps exact ratios (4 * V == N) at 1


def eval_every_message(
    eval_every: int, steps_per_epoch: int, train_clips_per_epoch: int, val_clips: int, chosen: bool
) -> str:
    """The log line stating when validation runs and why."""
    steps = eval_every * steps_per_epoch
    when = "every epoch" if eval_every == 1 else f"every {eval_every} epochs"
    when += f" ({steps} step{'s' if steps != 1 else ''}) and after the last step"
    if not chosen:
        return f"validation {when} (--eval-every)"
    share = val_clips / (eval_every * train_clips_per_epoch + val_clips) if val_clips else 0.0
    return (
        f"validation {when}: {val_clips} validation clips against {train_clips_per_epoch} training clips per epoch "
        f"keep validation at {share:.0%} of the clips decoded (at most {VALIDATION_SHARE:.0%}; "
        "--eval-every N to choose)"
    )
