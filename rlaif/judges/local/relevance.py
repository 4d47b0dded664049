"""Relevance judge: does the reply take up what the user asked? (`type: relevance`)

    type: relevance
    encoder: sentence-transformers/all-MiniLM-L6-v2   # hub id or local folder (AutoModel)
    copy_penalty: 1.0       # weight of the copy penalty (0 turns it off)
    pooling: mean           # as sentence-transformers pools all-MiniLM

    value = clip(cos(e(query), e(reply)) - copy_penalty * copy_share(reply, prompt), -1, 1)

on the declared scale [-1, 1], higher = more relevant:

- query: the text of the prompt's last non-empty Human turn (`query_of`). PPO
  (`rlaif.ppo.rewards.score_samples`) and the hold-out (`rlaif.evaluation`) hand the judge
  the prompt the policy answered as plain text: the HH dialogue "\\n\\nHuman: ...\\n\\n
  Assistant:" (`rlaif.data.prompts.make_prompts`; with `task: chat` the chat template is
  applied only at tokenisation, the judge still sees this text). It is parsed with
  `rlaif.data.hh.parse_transcript` (a dialogue that ends on a Human turn is read as if the
  final "\\n\\nAssistant:" followed); a prompt that is not an HH dialogue (no role markers,
  or text in front of the first `Human:` such as the summarize task's instruction) is used
  whole. Earlier turns are left out: the reply should answer the latest request.
- reply: the response as given. An empty or whitespace reply is embedded like any text (the
  encoder sees only its [CLS] [SEP] tokens); no special case sets its value.
- e: the encoder's pooled sentence vector; cosine is taken explicitly, so it does not depend
  on normalisation.
- copy_share (`copy_share`): the share of the reply's word bigrams, counted with repeats,
  that occur in the prompt (in any turn; bigrams never cross a turn, and role markers are no
  words). Words are lowercased runs of letters and digits, with inner apostrophes (’ read
  as '). A reply of fewer than two words has no bigram and share 0. Echoing the request back
  has cosine ~1 and share 1, so it scores ~1 - copy_penalty (0 at the default weight 1),
  below any reply that takes the request up in its own words.
- The clip keeps the value in [-1, 1]: float rounding can put the cosine of two equal texts
  a hair above 1, and only a reply that copies the prompt while pointing away from it could
  go below -1.

`Score.raw` is JSON {"cosine", "copy_share"}, and `Score.details` holds the same numbers.

Limits: it measures topic, not answer quality or harm. The request restated in other words,
or a string of its keywords, scores as high as an answer (docs/DESIGN.md, Known limits);
the bigram penalty catches only verbatim copying.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rlaif.data.hh import ASSISTANT_MARKER, HHFormatError, parse_transcript
from rlaif.judges.base import JudgeError, Sample, Scale, Score
from rlaif.judges.local.embedding import EncoderJudge, LinearHead, SentenceEncoder, load_head
from rlaif.judges.spec import RelevanceSpec

if TYPE_CHECKING:
    import torch

DEFAULT_SCALE = (-1.0, 1.0)
HEAD_SCALES = {"prob": (0.0, 1.0), "logit": (-20.0, 20.0)}
PAIR_FEATURES = "relevance-pair-v1"  # recorded in a head's meta: what its columns are
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def prompt_turns(prompt: str) -> list[tuple[str, str]] | None:
    """(role, text) turns of an HH-format prompt (without the empty final Assistant turn),
    or None when the prompt is not an HH dialogue."""
    for text in (prompt, prompt.rstrip() + ASSISTANT_MARKER):
        try:
            turns = parse_transcript(text)
        except HHFormatError:
            continue
        if turns and turns[-1].role == "assistant" and not turns[-1].text:
            turns = turns[:-1]  # the marker the reply continues
        return [(t.role, t.text) for t in turns]
    return None


def query_of(prompt: str) -> str:
    """The text the reply should answer: the last non-empty Human turn, else the whole prompt."""
    turns = prompt_turns(prompt)
    humans = [text for role, text in (turns or []) if role == "human" and text]
    return humans[-1] if humans else prompt.strip()


def words(text: str) -> list[str]:
    """Lowercased words: runs of letters and digits, inner apostrophes kept (’ read as ')."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def bigrams(text: str) -> list[tuple[str, str]]:
    """The word bigrams of `text`, in order, with repeats."""
    w = words(text)
    return list(zip(w, w[1:]))


def copy_share(reply: str, prompt: str) -> float:
    """Share of the reply's word bigrams (with repeats) that occur in the prompt; 0 without any."""
    mine = bigrams(reply)
    if not mine:
        return 0.0
    turns = prompt_turns(prompt)
    texts = [text for _, text in turns] if turns is not None else [prompt]
    theirs = {bg for text in texts for bg in bigrams(text)}
    return sum(bg in theirs for bg in mine) / len(mine)


def pair_features(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(N, 2D) features of (query, reply) vector pairs (N, D): [q * r, |q - r|]."""
    import torch

    return torch.cat([q * r, (q - r).abs()], dim=-1)


class RelevanceJudge(EncoderJudge):
    """Cosine of the last Human turn's and the reply's sentence embeddings, minus a copy
    penalty (module doc); the encoder loads on first use."""

    def __init__(self, spec: RelevanceSpec) -> None:
        self.spec = spec
        self.name = spec.name or "relevance"
        self.head = load_head(Path(spec.head).expanduser(), self.name) if spec.head else None
        default = HEAD_SCALES[spec.output] if self.head is not None else DEFAULT_SCALE
        self.scale = Scale(*(spec.scale or default))
        self._index = self._resolve_label(self.head) if self.head is not None else None
        self.encoder = SentenceEncoder.from_spec(spec)

    def _resolve_label(self, head: LinearHead) -> int:
        if head.meta.get("features", PAIR_FEATURES) != PAIR_FEATURES:
            raise JudgeError(f"judge {self.name!r}: head {self.spec.head} was fitted on "
                             f"{head.meta['features']!r} features, this judge makes "
                             f"{PAIR_FEATURES!r}; refit the head (rlaif.demo.helpfulness)")
        return head.label_index(self.spec.label, self.name, str(self.spec.head))

    def _score_sync(self, samples: Sequence[Sample]) -> list[Score]:
        import torch

        queries = [query_of(s.prompt) for s in samples]
        unique = list(dict.fromkeys(queries))  # k replies to one prompt embed it once
        vectors = self.encoder.embed(unique + [s.response for s in samples])  # (Q + N, D)
        row = {q: i for i, q in enumerate(unique)}
        q = vectors[torch.tensor([row[x] for x in queries], dtype=torch.long)]  # (N, D)
        r = vectors[len(unique):]  # (N, D)
        cosines = torch.nn.functional.cosine_similarity(q, r, dim=-1).tolist()  # (N,)
        heads: list[float | None] = [None] * len(samples)
        if self.head is not None and self._index is not None:
            logits = self.head.logits(pair_features(q, r))  # (N, C)
            heads = self.head.values(logits, self._index, self.spec.output).tolist()  # (N,)
        scores = []
        for sample, cos, head in zip(samples, cosines, heads):
            share = copy_share(sample.response, sample.prompt)
            parts = {"cosine": cos, "copy_share": share, **({"head": head} if head is not None else {})}
            raw = json.dumps(parts)
            base = cos if head is None else head
            if not math.isfinite(base):
                scores.append(Score.failed(f"encoder produced a non-finite value ({base})", raw=raw))
                continue
            value = min(self.scale.high, max(self.scale.low, base - self.spec.copy_penalty * share))
            scores.append(Score(value=value, raw=raw, details=parts))
        return scores
