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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

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


class Scorer:
    """Normalised video embeddings (B, D) -> per row the ranked (labels, scores) of the label set."""

    def __init__(
        self,
        classifier: torch.Tensor,
        logit_scale: torch.Tensor | float,
        labels: Sequence[str],
        top_k: int,
        options: ScoreOptions | None = None,
    ):
        import torch

        self.classifier = classifier.float()  # (K, D), normalised class embeddings
        self.logit_scale = torch.as_tensor(logit_scale, dtype=torch.float32).to(self.classifier.device)
        self.labels = list(labels)
        self.top_k = min(top_k, len(self.labels))
        self.options = options or ScoreOptions()
        if self.options.score not in SCORE_KINDS:
            raise ValueError(f"unknown score {self.options.score!r}; available: {', '.join(SCORE_KINDS)}")

    def __call__(self, embeddings: torch.Tensor) -> list[tuple[list[str], list[float]]]:
        import torch

        opts = self.options
        with torch.inference_mode():
            video = embeddings.to(self.classifier.device).float()
            # The same expression as EZClip.forward, so the probabilities match the model's logits bit for bit.
            probs = (self.logit_scale * video @ self.classifier.t()).softmax(dim=-1)  # (B, K)
            cosine = video @ self.classifier.t() if opts.score == "cosine" or opts.min_score is not None else None
            shown = probs if opts.score == "softmax" else cosine
            assert shown is not None  # __init__ checked that the score is softmax or cosine
            scores, index = shown.topk(self.top_k, dim=-1)
            keep = torch.ones_like(scores, dtype=torch.bool)
            if opts.threshold is not None:
                keep &= probs.gather(1, index) >= opts.threshold
            if opts.min_score is not None:
                assert cosine is not None  # computed above whenever min_score is set
                keep &= cosine.gather(1, index) >= opts.min_score
        labels, out = self.labels, []
        if opts.threshold is None and opts.min_score is None:  # plain top-k: nothing to filter
            for idx, sc in zip(index.cpu().tolist(), scores.cpu().tolist()):
                out.append(([labels[i] for i in idx], [round(s, 6) for s in sc]))
            return out
        for idx, sc, ok in zip(index.cpu().tolist(), scores.cpu().tolist(), keep.cpu().tolist()):
            out.append(([labels[i] for i, k in zip(idx, ok) if k], [round(s, 6) for s, k in zip(sc, ok) if k]))
        return out
