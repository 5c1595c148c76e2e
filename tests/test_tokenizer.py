"""The bundle's tokenizer.json (Hugging Face `tokenizers`) gives open_clip's CLIP token ids."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pytest

pytest.importorskip("tokenizers")
open_clip_tokenizer = pytest.importorskip("open_clip.tokenizer")

from ezclip_cli.model.tokenizer import ClipTokenizer  # noqa: E402

# Scripts, combining marks, controls, punctuation, emoji: where the cleaning, the word pattern
# and the byte-level BPE could part ways with open_clip's.
RANGES = [
    (0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x52F), (0x590, 0x6FF),
    (0x900, 0x97F), (0x2000, 0x206F), (0x3040, 0x30FF), (0x4E00, 0x4EFF), (0xAC00, 0xAC7F), (0x1F300, 0x1F64F),
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """Ours, written as tokenizer.json and read back as `ezclip tag --runtime onnx` reads it, and open_clip's."""
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    ClipTokenizer.from_vocab(open_clip_tokenizer.default_bpe()).save(path)
    return ClipTokenizer.from_file(path), open_clip_tokenizer.SimpleTokenizer()


def random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    while len(texts) < count:
        text = "".join(chr(rng.randint(*rng.choice(RANGES))) for _ in range(rng.randint(0, 40)))
        # Characters unassigned in this Python's Unicode tables are left out: `regex` (open_clip) and
        # `tokenizers` each carry their own Unicode version and may class them differently.
        if all(unicodedata.category(c) != "Cn" for c in text):
            texts.append(text)
    return texts


def test_ids_match_open_clip_on_hard_cases(tokenizers):
    ours, theirs = tokenizers
    texts = [
        "a photo of action {}",
        "it's the dog's ball, they're sure, I'd've, we'll, I'm, you've",
        "IT'S LOUD, DON'T",
        "Tom &amp; Jerry &amp;amp; friends",  # html entities, unescaped twice
        "mojibake cafÃ©",  # ftfy's repair
        "",
        "   ",
        "multiple     spaces\tand\nnewlines\r\n\u00a0\u2003 ",
        "ΟΔΟΣ Σίσυφος",  # a final sigma: Python's lower case, not per character
        "Ρ\u0313 Ϊ\u0301 e\u0301te",  # combining marks: composed before lower-casing, never after
        "a\u0345b",  # a mark open_clip's case-insensitive pattern skips
        "İstanbul straße ǅ ＡＢＣ１２３ ﬁne",
        "<start_of_text> a<end_of_text>b <START_OF_TEXT>",  # open_clip reads these names as the tokens
        "emoji 👍🏽 family 👨‍👩‍👧 长城 🚴",
        "1,234.56 € 3D-printing_stuff 1999",
        "word " * 100,  # truncated: 75 words between <start> and <end>
        "9" * 80,
    ]
    np.testing.assert_array_equal(ours(texts), theirs(texts).numpy())


def test_ids_match_open_clip_on_random_unicode(tokenizers):
    ours, theirs = tokenizers
    texts = random_texts(1500)
    got, expected = ours(texts), theirs(texts).numpy()
    differ = [t for t, a, b in zip(texts, got, expected) if not np.array_equal(a, b)]
    assert differ == []


def test_tokenizer_json_is_a_standard_tokenizers_file(tokenizers, tmp_path):
    """Read with `tokenizers` alone: <start> ids <end>, padded with 0 and cut at 77 as open_clip does."""
    from tokenizers import Tokenizer

    ours, theirs = tokenizers
    ours.save(tmp_path / "tokenizer.json")
    plain = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in ["a video of a person riding a bike", "word " * 100]:  # already clean: no ftfy or html needed
        ids = plain.encode(text).ids
        assert ids == theirs([text])[0].tolist()
        assert len(ids) == 77 and ids[0] == 49406 and 49407 in ids
    assert plain.get_vocab_size() == 49408
    assert plain.decode(plain.encode("a video of juggling").ids[:6]) == "a video of juggling"
