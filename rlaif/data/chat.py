"""Chat prompts (`data.task: chat`): an HH dialogue rendered through the tokenizer's own chat template.

Prompts stay the plain HH dialogue everywhere ("\\n\\nHuman: ...\\n\\nAssistant:"): that is what
judges and evaluators see. Only the policy's input is rendered, at tokenisation time:

    "\\n\\nHuman: Hi\\n\\nAssistant: Hello\\n\\nHuman: Joke?\\n\\nAssistant:"
      -> [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
          {"role": "user", "content": "Joke?"}]          (optional system message first)
      -> tokenizer.apply_chat_template(..., add_generation_prompt=True)

`encode_prompts` is the one place prompts become token ids for the policy (the length filter
and generation both use it), so the count the filter sees is the count the policy gets.
Nothing here imports torch: the tokenizer is only called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.data.hh import HHFormatError, parse_transcript

ROLES = {"human": "user", "assistant": "assistant"}


class ChatTemplateError(ValueError):
    """The tokenizer has no chat template, so chat prompts cannot be rendered."""


def chat_messages(dialogue: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The turns of an HH prompt as chat messages (user / assistant), its final empty Assistant turn dropped."""
    turns = parse_transcript(dialogue, where="chat prompt")
    if turns[-1].text:  # a whole transcript, not a prompt the assistant continues
        raise HHFormatError(
            f"the prompt ends with an Assistant reply ({turns[-1].text[:40]!r}), not with the bare "
            "'\\n\\nAssistant:' marker", where="chat prompt",
            fix="pass the dialogue up to and including the final '\\n\\nAssistant:'")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    return messages + [{"role": ROLES[t.role], "content": t.text} for t in turns[:-1]]


def render_chat(tokenizer: Any, dialogue: str, system_prompt: str | None = None) -> str:
    """The HH prompt `dialogue` as the tokenizer's chat template writes it, ending in the generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ChatTemplateError(
            f"tokenizer {name!r} has no chat template, and data.task=chat renders prompts through "
            "it; use data.task=dialogue (plain '\\n\\nHuman: ... \\n\\nAssistant:' text), or a "
            "tokenizer that has one (e.g. the model's Instruct variant)")
    return tokenizer.apply_chat_template(chat_messages(dialogue, system_prompt), tokenize=False,
                                         add_generation_prompt=True)


def encode_prompts(tokenizer: Any, prompts: Sequence[str], *, chat: bool = False,
                   system_prompt: str | None = None, **kwargs: Any) -> Any:
    """Tokenise prompts as the policy sees them: plain text with the tokenizer's special tokens,
    or (chat) the rendered template, whose special tokens are already in the text."""
    if chat:
        texts = [render_chat(tokenizer, p, system_prompt) for p in prompts]
        # add_special_tokens=False: the template wrote BOS itself where the model wants one.
        return tokenizer(texts, add_special_tokens=False, **kwargs)
    if system_prompt is not None:
        raise ValueError("a system prompt is only used with chat prompts; pass chat=True")
    return tokenizer(list(prompts), add_special_tokens=True, **kwargs)
