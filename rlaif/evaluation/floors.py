"""Floor rows: every metric as if the policy had replied one fixed text to every hold-out prompt
(k times each). An empty reply, or "I'm sorry to hear that.", is perfectly non-toxic; the floor
columns show what a model that says nothing would score, so a detoxified model can be told from
one that learnt to say nothing.

A floor is a `HoldoutSide` whose every reply is the text: toxicity by the evaluator and
helpfulness by the helpfulness judge on (prompt, text) (scored once per prompt and repeated k
times: the same input gives the same score), length and distinct-n on the text's tokens as
generation would have produced them (`fluency.floor_reply_ids`), perplexity under the start
model (one forward pass at before time, when the model is the start model). Floors are saved
with the before side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rlaif.evaluation.fluency import floor_eos_id, floor_reply_ids, reply_nll
from rlaif.evaluation.side import HoldoutSide

log = logging.getLogger(__name__)

DEFAULT_FLOORS: tuple[str, ...] = ("", "I'm sorry to hear that.")  # = EvalConfig.floors' default


def floor_label(text: str) -> str:
    """How the report names a floor: "empty reply", or the text in quotes."""
    return "empty reply" if not text.strip() else f'"{text}"'


def build_floor(text: str, prompts: Sequence[str], *, k: int, evaluator: Any, helpfulness: Any = None,
                gen: Any = None, gen_kwargs: dict[str, Any] | None = None, start_lm: str | None = None,
                fluency: bool = True, batch_size: int = 16) -> HoldoutSide:
    """The floor side of `text` over `prompts` (k replies each).

    `evaluator` is a `ToxicityEvaluator`, `helpfulness` a `HelpfulnessJudge` or None. `gen` is
    the start model's `Generation` of the before side (its LM, tokenizer and the prompts' token
    ids, k rows per prompt) and `start_lm` that model's name; without `gen`, length, distinct-n
    and perplexity are not measured, with `fluency=False` perplexity is not. A text longer than
    `gen_kwargs["max_new_tokens"]` tokens is cut there (no EOS), as sampling would have cut it, and
    the cut text is what the judges see."""
    n = len(prompts)
    texts = [text] * n  # what each prompt's floor reply says (cut below if generation would cut it)

    def repeat(values: Sequence[Any]) -> list[Any]:
        return [v for v in values for _ in range(k)]

    side = HoldoutSide(responses=[], toxicity=[], model=f"floor: {floor_label(text)}")
    if gen is not None:
        from rlaif.models.generate import Generation

        kwargs = gen_kwargs or {}
        eos = floor_eos_id(gen.lm, gen.tokenizer, kwargs)
        prompt_ids = [gen.prompt_ids[i * k] for i in range(n)]  # each prompt's first sample
        replies = [floor_reply_ids(gen.tokenizer, text, ids, eos, seq2seq=gen.is_seq2seq) for ids in prompt_ids]
        cap = int(kwargs.get("max_new_tokens") or 0)
        if cap and any(len(r) > cap for r in replies):
            # sampling stops after max_new_tokens: the most the model could have said of the text
            log.warning("floor %s is longer than max_new_tokens=%d: cut as generation would cut it",
                        floor_label(text), cap)
            replies = [r[:cap] for r in replies]
            texts = [gen.tokenizer.decode(r, skip_special_tokens=True).strip() for r in replies]
        ended = [bool(r) and r[-1] == eos for r in replies]
        floor_gen = Generation(texts, prompt_ids, replies, gen.lm, gen.tokenizer, gen.is_seq2seq)
        if fluency:
            side.start_nll = repeat(reply_nll(gen.lm, floor_gen, batch_size=batch_size))
            side.start_lm = start_lm
        side.token_ids = repeat([r[:-1] if end else r for r, end in zip(replies, ended)])
        side.eos = repeat(ended)
        side.lengths = repeat([len(r) for r in replies])
    side.responses = repeat(texts)
    side.toxicity = repeat(evaluator.scores(prompts, texts))
    if helpfulness is not None:
        side.helpfulness = repeat(helpfulness.scores(prompts, texts))
        side.helpfulness_judge = helpfulness.name
    return side


def build_floors(texts: Sequence[str], prompts: Sequence[str], **kwargs: Any) -> dict[str, HoldoutSide]:
    """`build_floor` for each text (a repeated text once), in order."""
    return {text: build_floor(text, prompts, **kwargs) for text in dict.fromkeys(texts)}

