"""Label sets: load them by bundled name, file or inline list, and turn them into prompt text.

A label set is the ordered list of class names a video is scored against. Outputs always keep
the canonical label; prompts use a natural-text form of it (docs/model.md section 5), either the
16 reference templates averaged per class or one free-text description per class.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ezclip_cli.data.text_files import read_text_file
from ezclip_cli.errors import LabelsetError

# The reference's 16 prompt templates (EZ-CLIP utils/Text_Prompt.py), in its order.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of action {}",
    "a picture of action {}",
    "Human action of {}",
    "{}, an action",
    "{} this is an action",
    "{}, a video of action",
    "Playing action of {}",
    "{}",
    "Playing a kind of action, {}",
    "Doing a kind of action, {}",
    "Look, the human is {}",
    "Can you recognize the action of {}?",
    "Video classification of {}",
    "A video of {}",
    "The man is {}",
    "The woman is {}",
)

# Bounds on a label set, checked while it is read and before any text is encoded: a 100 MB
# "label file" of a million lines would otherwise take minutes, gigabytes and a huge text cache.
# Far above any benchmark (Kinetics-700: 700 labels of at most 50 bytes); CLIP reads 77 tokens.
MAX_LABELS = 50_000
MAX_LABEL_BYTES = 1024  # one label (a class name, or an SSv2-style sentence)
MAX_DESCRIPTION_BYTES = 8192  # one CSV description (a paragraph; CLIP keeps its first 77 tokens)
MAX_LABEL_FILE_BYTES = 32 * 2**20

_BUNDLED_PREFIX = "bundled:"
# Our header names, then the EZ-CLIP reference's description files ("SNo,Class Name,GPT3 discription", sic).
_LABEL_COLUMNS = ("label", "class name")
_DESCRIPTION_COLUMNS = ("description", "prompt", "gpt3 discription", "gpt3 description")


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of unique labels, each with an optional free-text description."""

    name: str  # bundled name, file stem, or "inline"
    labels: tuple[str, ...]  # canonical labels; outputs keep these
    descriptions: tuple[str | None, ...]  # per label description/prompt, or None
    source: str  # file path, "bundled:<name>", or "inline"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "descriptions", tuple(self.descriptions))
        if len(self.labels) != len(self.descriptions):
            raise ValueError(
                f"LabelSet {self.name!r}: {len(self.labels)} labels but {len(self.descriptions)} descriptions"
            )

    def __len__(self) -> int:
        return len(self.labels)


def labelset_dir() -> Path:
    """Folder of the bundled label sets: inside the installed package, else the repo's labelsets/."""
    packaged = Path(__file__).parents[1] / "labelsets"  # the wheel force-includes them here
    if packaged.is_dir():
        return packaged
    return Path(__file__).parents[2] / "labelsets"


def list_labelsets() -> list[str]:
    """Names of the bundled label sets, sorted."""
    folder = labelset_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.txt"))


def load_labelset(spec: str | os.PathLike[str]) -> LabelSet:
    """Load a label set from a bundled name, a .txt/.csv file, or an inline comma list.

    Resolution order: ``bundled:<name>`` or a bundled name (``k400``), then an existing file,
    then an inline list (``"surfing,skateboarding"``; needs a comma, so a single inline label
    is written ``"surfing,"``). Raises LabelsetError with a one-line message.
    """
    if isinstance(spec, os.PathLike):
        return _load_file(Path(spec), str(spec))
    text = spec.strip()
    if not text:
        raise LabelsetError("empty label set spec; give a bundled name, a file, or 'a,b,c'")
    if text.startswith(_BUNDLED_PREFIX):
        return _load_bundled(text[len(_BUNDLED_PREFIX) :].strip())
    available = list_labelsets()
    if text.lower() in available:
        return _load_bundled(text.lower())
    path = Path(text).expanduser()
    if path.exists():
        return _load_file(path, text)
    if "," in text:
        return _parse_inline(text)
    if os.sep in text or "/" in text or path.suffix.lower() in (".txt", ".csv"):
        raise LabelsetError(f"label file not found: '{text}'")
    raise LabelsetError(
        f"no such label file or bundled label set '{text}'; available: "
        f"{', '.join(available) or '(none)'}; for inline labels use a comma list like 'a,b'"
    )


def label_to_text(label: str) -> str:
    """Natural text of a label for prompts: "ApplyEyeMakeup" -> "apply eye makeup".

    Underscores (and hyphens, in one-word labels) become spaces and CamelCase is split; only
    then are capitalised words lower-cased, keeping acronyms ("UsingATM" -> "using ATM").
    Labels that are already text ("playing guitar", SSv2 templates) only get whitespace collapsed.
    """
    words = label.split()
    if len(words) > 1:
        if "_" not in label:
            return " ".join(words)
        return " ".join(_lower_word(w) for w in label.replace("_", " ").split())
    if not words:
        return ""
    word = words[0]
    parts = [p for p in word.replace("-", "_").split("_") if p]
    changed = len(parts) > 1 or "_" in word or "-" in word
    pieces: list[str] = []
    for part in parts:
        if _is_camel(part):
            pieces.extend(_split_camel(part))
            changed = True
        else:
            pieces.append(part)
    if not changed:
        return word
    return " ".join(_lower_word(p) for p in pieces)


def prompt_name(label: str, raw: bool = False) -> str:
    """The class text put into templates: natural text, or with `raw` the label as written
    (underscores as spaces; no CamelCase split), as the reference fed UCF101 names ("ApplyEyeMakeup")."""
    return " ".join(label.replace("_", " ").split()) if raw else label_to_text(label)


def template_problem(template: object) -> str | None:
    """What is wrong with a prompt template (it must hold '{}' once, where the label goes), or None."""
    if isinstance(template, str) and template.count("{}") == 1:
        return None
    return f"template must contain '{{}}' once, where the label goes: {template!r}"


def build_prompts(
    labelset: LabelSet,
    templates: Sequence[str] | None = None,
    use_descriptions: bool = True,
    raw_names: bool = False,
) -> list[list[str]]:
    """Prompt texts per label: its description if it has one, else every template filled in."""
    templates = DEFAULT_TEMPLATES if templates is None else tuple(templates)
    if not templates:
        raise LabelsetError("no prompt templates given; pass at least one template with '{}'")
    for template in templates:
        if problem := template_problem(template):
            raise LabelsetError(problem)
    prompts: list[list[str]] = []
    for label, description in zip(labelset.labels, labelset.descriptions):
        if use_descriptions and description is not None:
            prompts.append([description])
        else:
            text = prompt_name(label, raw_names)
            # replace, not format: other braces in a user's template stay literal
            prompts.append([t.replace("{}", text) for t in templates])
    return prompts


def labelset_fingerprint(prompts: list[list[str]]) -> str:
    """SHA-256 hex of the prompt texts, order and grouping included (cache and resume key)."""
    payload = json.dumps(prompts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# -- loading ---------------------------------------------------------------------------------


def _load_bundled(name: str) -> LabelSet:
    available = list_labelsets()
    if name not in available:
        raise LabelsetError(f"unknown label set '{name}'; available: {', '.join(available) or '(none)'}")
    path = labelset_dir() / f"{name}.txt"
    labels = _parse_txt(_read_text(path, str(path)), str(path))
    return LabelSet(name, labels, (None,) * len(labels), f"{_BUNDLED_PREFIX}{name}")


def _load_file(path: Path, shown: str) -> LabelSet:
    if not path.exists():
        raise LabelsetError(f"label file not found: '{shown}'")
    if path.is_dir():
        raise LabelsetError(f"'{shown}' is a directory, not a label file (.txt or .csv)")
    text = _read_text(path, shown)
    if path.suffix.lower() == ".csv":
        labels, descriptions = _parse_csv(text, shown)
    else:
        labels = _parse_txt(text, shown)
        descriptions = (None,) * len(labels)
    return LabelSet(path.stem, labels, descriptions, shown)


def _read_text(path: Path, shown: str) -> str:
    return read_text_file(path, "label file", LabelsetError, MAX_LABEL_FILE_BYTES, shown)


def _parse_txt(text: str, shown: str) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        label = line.strip()
        if not label or label.startswith("#"):
            continue
        _add_label(seen, label, number, f"{shown}:{number}")
    if not seen:
        raise LabelsetError(f"{shown}: no labels (only blank lines or '#' comments)")
    return tuple(seen)


def _parse_csv(text: str, shown: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise LabelsetError(f"{shown}: empty file; expected a header row with a 'label' column") from None
    except csv.Error as e:
        raise LabelsetError(f"{shown}:1: bad CSV: {e}") from None
    columns = [" ".join(c.split()).lower() for c in header]
    label_columns = [c for c in _LABEL_COLUMNS if c in columns]
    if not label_columns:
        found = ", ".join(repr(c) for c in header if c.strip()) or "nothing"
        raise LabelsetError(f"{shown}:1: no 'label' column (or 'Class Name') in the header (found {found})")
    for name in (*_LABEL_COLUMNS, *_DESCRIPTION_COLUMNS):
        if columns.count(name) > 1:
            raise LabelsetError(f"{shown}:1: column '{name}' appears more than once in the header")
    text_columns = [c for c in _DESCRIPTION_COLUMNS if c in columns]
    if len(text_columns) > 1:
        raise LabelsetError(f"{shown}:1: has both {' and '.join(repr(c) for c in text_columns)} columns; keep one")
    label_at = columns.index(label_columns[0])
    text_at = columns.index(text_columns[0]) if text_columns else None

    seen: dict[str, int] = {}  # label -> line it is on
    descriptions: list[str | None] = []
    start = reader.line_num + 1  # a quoted field can span lines: report where the row starts
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise LabelsetError(f"{shown}:{start}: bad CSV: {e}") from None
        line, where = start, f"{shown}:{start}"
        start = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            raise LabelsetError(f"{where}: blank line; remove it (CSV rows need a label)")
        label = row[label_at].strip() if label_at < len(row) else ""
        if not label:
            raise LabelsetError(f"{where}: empty label")
        if "\n" in label or "\r" in label:
            raise LabelsetError(f"{where}: label contains a line break")
        _add_label(seen, label, line, where)
        description = row[text_at].strip() if text_at is not None and text_at < len(row) else ""
        if len(description.encode("utf-8")) > MAX_DESCRIPTION_BYTES:
            raise LabelsetError(
                f"{where}: description of '{label}' is {len(description.encode('utf-8'))} bytes, more than "
                f"{MAX_DESCRIPTION_BYTES}; CLIP reads only its first 77 tokens: shorten it"
            )
        descriptions.append(description or None)
    if not seen:
        raise LabelsetError(f"{shown}: no labels (only a header row)")
    return tuple(seen), tuple(descriptions)


def _parse_inline(text: str) -> LabelSet:
    seen: dict[str, int] = {}  # label -> its position in the list
    for position, item in enumerate(text.split(","), start=1):
        label = item.strip()
        if label:
            _add_label(seen, label, position, "inline label list", unit="item")
    if not seen:
        raise LabelsetError(f"inline label list '{text}' has no labels")
    return LabelSet("inline", tuple(seen), (None,) * len(seen), "inline")


def _add_label(seen: dict[str, int], label: str, at: int, where: str, unit: str = "line") -> None:
    """Record a label found at line (or inline item) `at`; a repeat is an error naming both.

    `seen` keeps insertion order, so it is both the duplicate check and the result. The bounds
    (MAX_LABELS, MAX_LABEL_BYTES) are checked here, as the set is read, so a runaway file stops
    at its first label too many instead of after being read and encoded whole.
    """
    size = len(label.encode("utf-8"))
    if size > MAX_LABEL_BYTES:
        raise LabelsetError(
            f"{where}: label of {size} bytes, more than {MAX_LABEL_BYTES}; a label is a class name "
            "(put long text in a CSV 'description' column)"
        )
    if len(seen) >= MAX_LABELS and label not in seen:
        raise LabelsetError(
            f"{where}: more than {MAX_LABELS:,} labels; a label set is a list of classes (is it the right file?)"
        )
    if label in seen:
        raise LabelsetError(f"{where}: duplicate label '{label}' (first at {unit} {seen[label]})")
    seen[label] = at


# -- label text ------------------------------------------------------------------------------


def _is_camel(word: str) -> bool:
    # "3DPrinting" counts; "iPhone" (starts lower-case) and "NASA" (no lower-case) do not
    return (
        word.isalnum() and not word[:1].islower() and any(c.isupper() for c in word) and any(c.islower() for c in word)
    )


def _split_camel(word: str) -> list[str]:
    """ "ApplyEyeMakeup" -> ["Apply", "Eye", "Makeup"]; "UsingATMCard" -> ["Using", "ATM", "Card"]."""
    pieces, start = [], 0
    for i in range(1, len(word)):
        prev, cur, nxt = word[i - 1], word[i], word[i + 1 : i + 2]
        if cur.isupper() and (prev.islower() or ((prev.isupper() or prev.isdigit()) and nxt.islower())):
            pieces.append(word[start:i])
            start = i
    pieces.append(word[start:])
    return pieces


def _lower_word(word: str) -> str:
    if len(word) > 1 and word.isupper():  # an acronym: ATM, BMX, 3D
        return word
    if word[:1].isupper() and not any(c.isupper() for c in word[1:]):
        return word.lower()
    return word  # mixed case like "iPhone" is kept as written
