"""Class descriptions: one free-text prompt per class, read from a description CSV.

Every published EZ-CLIP model was trained and evaluated with GPT-3 class descriptions
(EZ-CLIP, arXiv 2312.08010; the authors' configs all set `use_llm: True`). Their files (header ``SNo,Class Name,GPT3
discription``) spell classes their own way ("brush hair" for ``brush_hair``), so names
are matched with ``splits.normalise_name``. A class without a description is an error
that lists the names, or, when allowed, a loud warning: never a silent template fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ezclip_cli.errors import LabelsetError

log = logging.getLogger(__name__)

DESCRIPTION = "description"
TEMPLATES = "templates"


@dataclass(frozen=True)
class ClassTexts:
    """The prompt texts of each class and which kind of text each class got."""

    prompts: list[list[str]]  # per class: [description] or every template filled in
    sources: tuple[str, ...]  # per class: "description" or "templates"

    @property
    def described(self) -> int:
        return sum(s == DESCRIPTION for s in self.sources)


def load_descriptions(path: str | Path) -> dict[str, str]:
    """normalised class name -> description, from our CSV (label,description) or the reference's."""
    from ezclip_cli.data.labels import load_labelset
    from ezclip_cli.data.splits import normalise_name

    described = load_labelset(Path(path))
    if all(d is None for d in described.descriptions):
        raise LabelsetError(f"{path}: no descriptions (want a 'description' or 'GPT3 discription' column)")
    out: dict[str, str] = {}
    written: dict[str, str] = {}
    for label, text in zip(described.labels, described.descriptions):
        key = normalise_name(label)
        if key in written:
            raise LabelsetError(f"{path}: '{written[key]}' and '{label}' name the same class; keep one")
        written[key] = label
        if text is not None:
            out[key] = text
    return out


def class_texts(
    classes: Sequence[str],
    *,
    templates: Sequence[str] = (),
    descriptions: str | Path | None = None,
    allow_missing: bool = False,
    raw_names: bool = False,
) -> ClassTexts:
    """Prompts per class: its description when `descriptions` is given, else the templates.

    A class the description file lacks is a LabelsetError naming every such class, unless
    `allow_missing`: then it uses the templates and a warning names them.
    """
    from ezclip_cli.data.labels import LabelSet, build_prompts
    from ezclip_cli.data.splits import normalise_name

    found: list[str | None] = [None] * len(classes)
    if descriptions is not None:
        table = load_descriptions(descriptions)
        found = [table.get(normalise_name(c)) for c in classes]
        missing = [c for c, text in zip(classes, found) if text is None]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:12]) + (" ..." if len(missing) > 12 else "")
            if not allow_missing:
                raise LabelsetError(
                    f"{len(missing)} of {len(classes)} classes have no description in {descriptions}: {shown}; "
                    "add them, or pass --allow-missing-descriptions to give those classes the templates"
                )
            log.warning(
                "WARNING: %d of %d classes have NO description in %s and use the templates instead: %s",
                len(missing),
                len(classes),
                descriptions,
                shown,
            )
    labelset = LabelSet("classes", tuple(classes), tuple(found), "classes")
    prompts = build_prompts(labelset, templates or None, use_descriptions=True, raw_names=raw_names)
    return ClassTexts(prompts, tuple(TEMPLATES if text is None else DESCRIPTION for text in found))
