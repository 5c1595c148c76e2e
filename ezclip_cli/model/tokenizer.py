"""CLIP's BPE tokenizer as a standard Hugging Face `tokenizer.json`, for the torch-free text path.

open_clip's tokenizer imports torch. `ezclip export --text-encoder` builds the same tokenizer with
the `tokenizers` library from open_clip's vocabulary (bpe_simple_vocab_16e6.txt.gz: CLIP's byte
alphabet and merges) and writes it into the bundle as tokenizer.json; `ezclip tag --runtime onnx`
loads it with `Tokenizer.from_file`. Export checks that it gives open_clip's ids before it
reports success.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

SOT, EOT = "<start_of_text>", "<end_of_text>"  # open_clip's names for ids 49406 and 49407
END_OF_WORD = "</w>"
NUM_MERGES = 49152 - 256 - 2  # the vocabulary file's lines after its header that CLIP uses (48,894)
# open_clip's word pattern. It sees lower-cased text, so its re.IGNORECASE matters for U+0345 alone.
WORD_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


class ClipTokenizer:
    """Texts -> int64 (K, context_length) ids, exactly as open_clip's `tokenize` gives them.

    <start> ids <end>, zero-padded; a text too long is cut and keeps <end> last.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        truncation = tokenizer.truncation
        if truncation is None or tokenizer.padding is None:
            raise ValueError("a CLIP tokenizer pads and truncates to its context length")
        self.context_length = int(truncation["max_length"])

    @classmethod
    def from_file(cls, path: str | Path) -> ClipTokenizer:
        """A tokenizer.json written by `save` (or by `ezclip export --text-encoder`)."""
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    @classmethod
    def from_vocab(cls, vocab: str | Path, context_length: int = 77) -> ClipTokenizer:
        """Built from CLIP's gzipped BPE vocabulary, as open_clip's SimpleTokenizer reads it."""
        return cls(build_clip_tokenizer(vocab, context_length))

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        # encode() one text at a time: label sets are small, and tokenizers warns on stderr when a
        # process forks (decode workers) after its thread pool (encode_batch) has run.
        rows = [self.tokenizer.encode(clean_text(text)).ids for text in texts]
        return np.array(rows, dtype=np.int64).reshape(len(rows), self.context_length)


def build_clip_tokenizer(vocab: str | Path, context_length: int = 77) -> Tokenizer:
    """CLIP's tokenizer (open_clip SimpleTokenizer, 'lower' cleaning, truncation) as a `tokenizers` Tokenizer.

    Ids: the 256 byte symbols, the same with the end-of-word suffix, one per merge, then <start>
    and <end>. The normalizer (whitespace runs to one space, strip, lower case) and the word
    pattern are CLIP's; open_clip's cleaning has steps no `tokenizers` normalizer has (ftfy, which
    also composes to NFC, html entities, Python's lower case), so texts go through `clean_text`
    first, as ClipTokenizer does.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    with gzip.open(vocab, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    alphabet = list(byte_alphabet().values())
    tokens = [*alphabet, *(a + END_OF_WORD for a in alphabet), *("".join(m) for m in merges), SOT, EOT]
    ids = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(
        models.BPE(
            vocab=ids,
            merges=[(a, b) for a, b in merges],
            end_of_word_suffix=END_OF_WORD,
            continuing_subword_prefix="",
            fuse_unk=False,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            # No NFC here: open_clip composes (ftfy) before it lower-cases and never after, and
            # composing lower-cased text changes some (a Greek capital with a combining mark).
            # U+0345, a combining mark that case-folds to a letter, matches none of the alternatives
            # of open_clip's case-insensitive pattern: it splits words and is dropped.
            normalizers.Replace("\u0345", " "),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Strip(),
            normalizers.Lowercase(),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True),  # keep the words
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # bytes -> CLIP's byte symbols
        ]
    )
    tokenizer.decoder = decoders.Sequence(
        [decoders.ByteLevel(), decoders.Replace(END_OF_WORD, " "), decoders.Strip(" ", 0, 1)]
    )
    # open_clip reads its special tokens' names in the text as those tokens (after lower-casing).
    tokenizer.add_special_tokens([AddedToken(SOT, normalized=True), AddedToken(EOT, normalized=True)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, ids[SOT]), (EOT, ids[EOT])]
    )
    tokenizer.enable_truncation(max_length=context_length)  # room is left for <start> and <end>
    tokenizer.enable_padding(length=context_length, pad_id=0, pad_token=tokens[0])  # open_clip pads with 0
    return tokenizer


def clean_text(text: str) -> str:
    """open_clip's 'lower' cleaning: ftfy (NFC included), html entities twice, whitespace runs, lower case.

    Lower-casing here keeps Python's rules (a final sigma), which the normalizer's per-character
    lower case lacks. ftfy is open_clip's dependency; where it is missing the text is not fixed.
    """
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return " ".join(html.unescape(html.unescape(text)).split()).lower()


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """Byte -> a printable character, in vocabulary order: printable Latin-1 bytes stand for
    themselves, the other 68 (controls, space, ...) for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in alphabet]
    alphabet.update({b: chr(256 + n) for n, b in enumerate(others)})
    return alphabet
