"""Video embeddings -> ranked labels and scores: the one scorer of `tag`, re-labelling and segments.

A video embedding v and the class embeddings c_k are L2-normalised, so v . c_k is a cosine
similarity in [-1, 1]. EZ-CLIP (arXiv 2312.08010, section 3) classifies with
softmax(logit_scale * cos) over the label set; that probability is the default score. It is
relative to the label set: it always sums to 1, so a clip that shows none of the labels still
gives some label a high probability. The raw cosine (`score="cosine"`) does not depend on the
other labels, which makes it the number to threshold when "none of these" must be possible.

Multi-label and abstain: `threshold` keeps labels whose softmax probability reaches it,
`min_score` keeps labels whose cosine reaches it (both may be given: both must hold). A row may
then list several labels, or none. `top_k` still caps the list (CSV has top_k label columns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

SCORE_KINDS = ("softmax", "cosine")


@dataclass(frozen=True)
class ScoreOptions:
    """Which number a row reports and which labels it keeps."""

    score: str = "softmax"  # "softmax": probability over the label set; "cosine": raw similarity
    threshold: float | None = None  # keep labels with probability >= threshold
    min_score: float | None = None  # keep labels with cosine >= min_score

    @property
    def is_default(self) -> bool:
        return self.score == "softmax" and self.threshold is None and self.min_score is None


def scoring_id(labels_id: str, options: ScoreOptions) -> str:
    """The label-set id rows are stamped with; other score options make another id (no mixing on resume)."""
    if options.is_default:
        return labels_id  # outputs written before these options existed stay resumable
    key = f"{labels_id}|{options.score}|{options.threshold}|{options.min_score}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


Ranked = tuple[list[str], list[float]]  # one clip's labels, best first, and their scores


class Scorer:
    """Normalised video embeddings (B, D) -> per row the ranked (labels, scores) of the label set.

    numpy alone, so the torch model, the ONNX bundle (no torch at all) and re-labelling of stored
    embeddings share it; on float32 it computes what EZClip.forward does (logit_scale * cos, softmax).
    """

    def __init__(
        self,
        classifier: ArrayLike,
        logit_scale: float,
        labels: Sequence[str],
        top_k: int,
        options: ScoreOptions | None = None,
    ):
        import numpy as np

        self.classifier = np.ascontiguousarray(_numpy(classifier), dtype=np.float32)  # (K, D), normalised
        self.logit_scale = np.float32(float(logit_scale))
        self.labels = list(labels)
        if self.classifier.ndim != 2 or len(self.classifier) != len(self.labels):
            raise ValueError(f"{len(self.labels)} labels but class embeddings of shape {self.classifier.shape}")
        self.top_k = min(top_k, len(self.labels))
        self.options = options or ScoreOptions()
        if self.options.score not in SCORE_KINDS:
            raise ValueError(f"unknown score {self.options.score!r}; available: {', '.join(SCORE_KINDS)}")

    @property
    def dim(self) -> int:
        return int(self.classifier.shape[1])

    def __call__(self, embeddings: ArrayLike) -> list[Ranked]:
        import numpy as np

        opts = self.options
        video = np.asarray(_numpy(embeddings), dtype=np.float32)
        cosine = video @ self.classifier.T  # (B, K)
        logits = self.logit_scale * cosine
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = exp / exp.sum(axis=1, keepdims=True)  # softmax over the label set
        shown = probs if opts.score == "softmax" else cosine
        index = np.argsort(-shown, axis=1, kind="stable")[:, : self.top_k]  # ties: the label set's order
        keep = np.ones(index.shape, dtype=bool)
        if opts.threshold is not None:
            keep &= np.take_along_axis(probs, index, axis=1) >= opts.threshold
        if opts.min_score is not None:
            keep &= np.take_along_axis(cosine, index, axis=1) >= opts.min_score
        scores = np.take_along_axis(shown, index, axis=1).tolist()
        labels = self.labels
        return [
            ([labels[i] for i, k in zip(idx, ok) if k], [round(s, 6) for s, k in zip(sc, ok) if k])
            for idx, sc, ok in zip(index.tolist(), scores, keep.tolist())
        ]


def _numpy(values: ArrayLike) -> Any:
    """A torch tensor (any device) as a numpy array; anything else as it is."""
    detach = getattr(values, "detach", None)
    return detach().float().cpu().numpy() if detach is not None else values
