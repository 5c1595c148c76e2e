"""CLIP's byte-level BPE tokenizer on numpy alone, for bundles that encode new label sets without torch.

open_clip's own tokenizer imports torch; this one reads the BPE vocabulary a bundle ships
(`ezclip export --text-encoder`) and gives the same ids, which export checks before it
reports success.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any


class ClipTokenizer:
    """CLIP's byte-level BPE (open_clip SimpleTokenizer, 'lower' cleaning, truncation) on numpy alone.

    Export checks it against open_clip's ids. ftfy and `regex` (open_clip's own dependencies)
    are used when installed; without them text is only html-unescaped and a close `re`
    pattern splits words, which differs only for rare Unicode.
    """

    def __init__(self, vocab: str | Path, context_length: int = 77):
        with gzip.open(vocab, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # CLIP's 48,894 merges
        alphabet = list(byte_alphabet().values())
        tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges]
        tokens += ["<start_of_text>", "<end_of_text>"]
        self.ids = {token: i for i, token in enumerate(tokens)}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.sot, self.eot = self.ids["<start_of_text>"], self.ids["<end_of_text>"]
        self.context_length = context_length
        self.pattern = _word_pattern()
        self._cache: dict[str, list[int]] = {}

    def __call__(self, texts: Sequence[str]) -> Any:
        """int64 (K, context_length): <start> ids <end>, zero-padded; too long keeps <end> last."""
        import numpy as np

        out = np.zeros((len(texts), self.context_length), np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot][: self.context_length]
            ids[-1] = self.eot
            out[row, : len(ids)] = ids
        return out

    def encode(self, text: str) -> list[int]:
        alphabet = byte_alphabet()
        ids: list[int] = []
        for word in self.pattern.findall(_clean(text)):
            if word not in self._cache:
                symbols = "".join(alphabet[b] for b in word.encode("utf-8"))
                self._cache[word] = [self.ids[piece] for piece in self._merge(symbols)]
            ids += self._cache[word]
        return ids

    def _merge(self, word: str) -> list[str]:
        """Apply the lowest-ranked merge until none applies; the last symbol carries '</w>'."""
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: self.ranks.get(pair, len(self.ranks)))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """Byte -> a printable character, in vocabulary order: printable Latin-1 bytes stand for
    themselves, the other 68 (controls, space, ...) for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in alphabet]
    alphabet.update({b: chr(256 + n) for n, b in enumerate(others)})
    return alphabet


def _word_pattern() -> Any:
    specials = r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|"
    try:
        import regex

        return regex.compile(specials + r"[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", regex.IGNORECASE)
    except ImportError:
        import re

        return re.compile(specials + r"[^\W\d_]+|\d|(?:[^\w\s]|_)+", re.IGNORECASE)


def _clean(text: str) -> str:
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return " ".join(html.unescape(html.unescape(text)).split()).lower()
