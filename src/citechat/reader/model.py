"""The reader network: the bundled MiniLM with its top layers retrained, plus two heads.

Layers ``0 .. n_layers - n_top - 1`` (and the embeddings) stay the bundled model's,
frozen, so training can run them once and cache their output
(:meth:`ReaderNet.lower`); the top ``n_top`` layers and the heads are trained and are
all the artifact stores.  Heads:

* answer: ``[CLS]`` and the mean of the marked sentence's tokens -> one logit,
  P(this sentence answers the question).  The sentence mean sits beside ``[CLS]``
  because with the lower layers frozen, only two layers can route the marked
  sentence's meaning to ``[CLS]``; pooling it directly is cheap and always there.
* span: per token start and end logits (SQuAD style), masked to the sentence.

It does not tokenise (encoding.py) or save and load files (artifact.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

MAX_ANSWER_TOKENS = 30


class TopTrained(nn.Module):
    """``bert`` (a ``transformers`` BertModel) with only its top ``n_top`` layers
    trainable; the artifact stores those layers and the tensors under ``HEADS``."""

    #: state-dict prefixes of the subclass's own trained modules
    HEADS: tuple[str, ...] = ()

    def __init__(self, bert: Any, n_top: int) -> None:
        super().__init__()
        n_layers = len(bert.encoder.layer)
        if not 1 <= n_top <= n_layers:
            raise ValueError(f"n_top must be between 1 and {n_layers}, got {n_top}")
        self.bert = bert
        self.n_top = n_top
        self.split = n_layers - n_top
        for p in self.bert.parameters():
            p.requires_grad_(False)
        for layer in self.top_layers():
            for p in layer.parameters():
                p.requires_grad_(True)

    def top_layers(self) -> list[nn.Module]:
        return list(self.bert.encoder.layer[self.split :])

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors the artifact stores: the top layers and the heads."""
        keep = tuple(f"bert.encoder.layer.{i}." for i in range(self.split, self.split + self.n_top))
        return {k: v for k, v in self.state_dict().items() if k.startswith((*keep, *self.HEADS))}

    def train(self, mode: bool = True) -> TopTrained:
        # the frozen part always runs as at inference (no dropout), cached or not
        super().train(mode)
        self.bert.embeddings.eval()
        for layer in self.bert.encoder.layer[: self.split]:
            layer.eval()
        return self


class ReaderNet(TopTrained):
    """The cross-encoder: question and marked sentence in one sequence, two heads."""

    HEADS = ("answer_head.", "span_head.")

    def __init__(self, bert: Any, n_top: int) -> None:
        super().__init__(bert, n_top)
        hidden = int(bert.config.hidden_size)
        self.answer_head = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )
        self.span_head = nn.Linear(hidden, 2)

    @staticmethod
    def _mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # additive (batch, 1, 1, seq) mask, as BertModel builds for its layers
        m = attention_mask[:, None, None, :].to(dtype)
        return (1.0 - m) * torch.finfo(dtype).min

    @staticmethod
    def _run(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = layer(hidden, attention_mask=mask)
        return out[0] if isinstance(out, tuple) else out

    def lower(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Hidden states after the frozen layers: what training caches."""
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        mask = self._mask(attention_mask, hidden.dtype)
        for layer in self.bert.encoder.layer[: self.split]:
            hidden = self._run(layer, hidden, mask)
        return hidden

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The trained layers over the frozen layers' output."""
        mask = self._mask(attention_mask, hidden.dtype)
        for layer in self.top_layers():
            hidden = self._run(layer, hidden, mask)
        return hidden

    def top(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, sentence_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(answer logit (B,), start logits (B, L), end logits (B, L)) from the
        frozen layers' output; logits off the sentence are a large negative."""
        hidden = self.upper(hidden, attention_mask)
        sent = sentence_mask.to(hidden.dtype)
        mean = (hidden * sent[..., None]).sum(1) / sent.sum(1, keepdim=True).clamp(min=1.0)
        answer = self.answer_head(torch.cat([hidden[:, 0], mean], dim=-1)).squeeze(-1)
        start, end = self.span_head(hidden).unbind(-1)
        off = sentence_mask == 0
        return answer, start.masked_fill(off, -1e4), end.masked_fill(off, -1e4)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sentence_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.lower(input_ids, token_type_ids, attention_mask)
        return self.top(hidden, attention_mask, sentence_mask)


def best_spans(
    start: np.ndarray,
    end: np.ndarray,
    sentence_mask: np.ndarray,
    max_tokens: int = MAX_ANSWER_TOKENS,
) -> list[tuple[int, int] | None]:
    """Per row, the token positions (i, j), i <= j < i + max_tokens, on the sentence,
    with the highest start[i] + end[j]; None for a row with no sentence token.

    >>> s = np.array([[0.0, 3.0, 0.0, 0.0]]); e = np.array([[0.0, 0.0, 0.0, 2.0]])
    >>> best_spans(s, e, np.array([[0, 1, 1, 1]]))
    [(1, 3)]
    """
    out: list[tuple[int, int] | None] = []
    for s, e, m in zip(start, end, sentence_mask, strict=True):
        pos = np.flatnonzero(m)
        if not len(pos):
            out.append(None)
            continue
        lo, hi = int(pos[0]), int(pos[-1]) + 1
        grid = s[lo:hi, None] + e[None, lo:hi]
        n = hi - lo
        i, j = np.indices((n, n))
        grid = np.where((j >= i) & (j < i + max_tokens), grid, -np.inf)
        a, b = np.unravel_index(int(np.argmax(grid)), grid.shape)
        out.append((lo + int(a), lo + int(b)))
    return out
