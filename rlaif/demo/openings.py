"""The opening exchange of each real red-team conversation: the human's first request and the
assistant's first reply, one per conversation.

The demo's prompts are these opening requests (`data.context: first_turn`); the rudeness
fine-tune answers them, and the helpfulness judge learns from them whether a reply answers
a request. Rows of one conversation (hh-rlhf keeps several comparisons of one red-team
attempt, each a row sharing the opening) give one opening: the first row's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rlaif.data.hh import ASSISTANT_MARKER, format_turns, parse_transcript


@dataclass(frozen=True)
class Opening:
    """One conversation's first request (as an HH prompt), that request's text, and the first reply."""

    prompt: str  # "\n\nHuman: <request>\n\nAssistant:"
    request: str
    reply: str
    cluster: str


def opening_of(example: Any) -> Opening:
    """The opening exchange of an HH example (its prompt and final reply, `HHExample`)."""
    turns = parse_transcript(example.prompt)  # ends in the empty Assistant turn it prompts
    request = turns[0].text
    reply = turns[1].text if len(turns) > 2 else example.chosen
    prompt = format_turns(turns[:1]) + ASSISTANT_MARKER
    cluster = str(example.meta.get("cluster") or " ".join(request.lower().split()))
    return Opening(prompt, request, reply, cluster)


def openings(examples: Iterable[Any]) -> list[Opening]:
    """The opening of each conversation in `examples`, first row of a conversation kept."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        op = opening_of(ex)
        if op.cluster not in seen:
            seen.add(op.cluster)
            out.append(op)
    return out
