"""Policy prompts from HH examples: task rendering, token-length filter, seeded split, stream.

    load_hh rows -> make_prompts(task) -> filter_by_length -> train_test_split -> PromptSplit
                                                                   PromptStream -> batches

Chat prompts (`task="chat"`) stay plain dialogues here: `rlaif.data.chat` renders them through the
tokenizer's chat template when they are tokenised for the policy (the length filter counts that).
`load_prompt_split(data, tokenizer)` runs the whole chain for a run's `data:` config section;
`load_split_prompts(source, split=...)` renders the first prompts of a whole split (evaluation),
and `load_split_clusters` gives each of them its cluster key (the conversation or request
template it comes from), for statistics that treat prompts of one cluster as dependent.
`context="first_turn"` keeps only the opening Human request of each dialogue, once.
`PromptStream` is the endless, seeded order in which the trainer takes the training prompts.
Nothing here imports torch: the tokenizer is only called.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from rlaif.data.chat import encode_prompts
from rlaif.data.hh import ASSISTANT_MARKER, HHExample, format_turns, load_hh, parse_transcript

if TYPE_CHECKING:  # only a type: keeps this module light to import
    from rlaif.config import DataConfig

SUMMARIZE_INSTRUCTION = "Summarize the following conversation."
SUMMARY_CUE = "Summary:"

T = TypeVar("T")
Task = Literal["dialogue", "summarize", "chat"]
Context = Literal["full", "first_turn"]


def normalise_text(text: str) -> str:
    """Text lowercased with every run of whitespace made one space (the cluster key's form)."""
    return " ".join(text.lower().split())


def first_human_turn(prompt: str) -> str:
    """The text of the first Human turn of an HH prompt or transcript (stripped; may be empty)."""
    return parse_transcript(prompt, where="prompt")[0].text


def first_turn_prompt(prompt: str) -> str:
    """The opening request of an HH prompt as a single-turn prompt (Human turn, then the marker)."""
    return format_turns(parse_transcript(prompt, where="prompt")[:1]) + ASSISTANT_MARKER


def cluster_of_prompt(prompt: str) -> str:
    """The cluster key of a prompt without a row: its normalised first Human turn."""
    return normalise_text(first_human_turn(prompt))


def dialogue_of(prompt: str) -> str:
    """The dialogue of a prompt without the leading blank line and the final Assistant marker."""
    if prompt.endswith(ASSISTANT_MARKER):
        prompt = prompt[: -len(ASSISTANT_MARKER)]
    return prompt.strip()


def in_context(examples: Iterable[T], context: Context = "full") -> list[tuple[T, str]]:
    """(example, its prompt) for each example kept under `context`: full keeps every example and
    its whole prompt; first_turn gives the first-turn prompt and keeps an identical one once (the
    first). Examples are HHExamples or prompt strings."""
    if context not in ("full", "first_turn"):
        raise ValueError(f"context must be 'full' or 'first_turn', got {context!r}")
    pairs = [(e, e.prompt if isinstance(e, HHExample) else e) for e in examples]
    if context == "full":
        return pairs  # type: ignore[return-value]
    seen: set[str] = set()
    kept = []
    for example, prompt in pairs:
        first = first_turn_prompt(prompt)  # type: ignore[arg-type]
        if first not in seen:
            seen.add(first)
            kept.append((example, first))
    return kept


def make_prompts(examples: Iterable[HHExample | str], task: Task = "dialogue",
                 context: Context = "full") -> list[str]:
    """Build policy prompts from examples (or prompt strings) for a task and context.

    dialogue:  the dialogue up to and including the final "\\n\\nAssistant:" (what the
               assistant continues).
    summarize: the walk-through's instruction, then the dialogue without the final
               Assistant marker, then a "Summary:" cue so the model writes the summary:
               "Summarize the following conversation.\\n\\nHuman: ...\\n\\nSummary:".
    chat:      the dialogue prompt as it is; the policy's input is rendered through the chat
               template at tokenisation (`rlaif.data.chat`), judges see this plain text.

    context full: the whole dialogue; first_turn: only its first Human turn,
    "\\n\\nHuman: <first turn>\\n\\nAssistant:", identical prompts kept once (the first).
    """
    prompts = [prompt for _, prompt in in_context(examples, context)]
    if task in ("dialogue", "chat"):
        return prompts
    if task == "summarize":
        return [f"{SUMMARIZE_INSTRUCTION}\n\n{dialogue_of(p)}\n\n{SUMMARY_CUE}" for p in prompts]
    raise ValueError(f"task must be 'dialogue', 'summarize' or 'chat', got {task!r}")


def filter_by_length(texts: Sequence[str], tokenizer: Any, max_tokens: int, min_tokens: int = 1, *,
                     chat: bool = False, system_prompt: str | None = None) -> list[int]:
    """Indices of texts whose token count as the policy sees them (special tokens, chat template
    when `chat`) lies in [min_tokens, max_tokens]."""
    if min_tokens < 0 or max_tokens < min_tokens:
        raise ValueError(
            f"need 0 <= min_tokens <= max_tokens, got min_tokens={min_tokens}, "
            f"max_tokens={max_tokens}"
        )
    if not texts:
        return []
    # Count what the policy will see: special tokens included (T5 appends </s>), and no
    # truncation, or every long text would count as exactly model_max_length.
    ids = encode_prompts(tokenizer, texts, chat=chat, system_prompt=system_prompt,
                         truncation=False)["input_ids"]
    return [i for i, row in enumerate(ids) if min_tokens <= len(row) <= max_tokens]


def train_test_split(items: Sequence[T], test_size: float | int,
                     seed: int) -> tuple[list[T], list[T]]:
    """Deterministic split by seed (same on every run and process); both parts keep input order."""
    n = len(items)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise ValueError(f"test_size must be a float in (0, 1) or an int count, got {test_size!r}")
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(
                f"test_size={test_size} as a fraction must lie in (0, 1); pass an int for a count"
            )
        n_test = round(n * test_size)
    else:
        n_test = test_size
    if not 0 <= n_test <= n:
        raise ValueError(f"test_size={test_size} asks for {n_test} test items out of {n}")
    # random.Random(int) is the same Mersenne Twister stream on every platform and process
    # (unlike hash()-based orders), so a seed names one split forever.
    order = list(range(n))
    random.Random(seed).shuffle(order)
    test_idx = set(order[:n_test])
    train = [x for i, x in enumerate(items) if i not in test_idx]
    test = [x for i, x in enumerate(items) if i in test_idx]
    return train, test


@dataclass
class PromptSplit:
    """Training prompts and the held-out prompts (for evaluation), both after the length filter."""

    train: list[str]
    test: list[str]


def load_prompt_split(data: DataConfig, tokenizer: Any) -> PromptSplit:
    """HH rows -> prompts for `data.task` -> token-length filter -> seeded train/test split."""
    dataset = load_hh(data.source, data_dir=data.data_dir, split=data.split,
                      on_bad_row=data.on_bad_row, limit=data.limit)
    prompts = make_prompts(dataset.examples, task=data.task, context=data.context)
    keep = filter_by_length(prompts, tokenizer, data.max_prompt_tokens, data.min_prompt_tokens,
                            chat=data.task == "chat", system_prompt=data.system_prompt)
    prompts = [prompts[i] for i in keep]
    if not prompts:
        raise ValueError(
            f"data: no prompt of {data.source!r} (split {data.split!r}, task {data.task!r}) has "
            f"between data.min_prompt_tokens={data.min_prompt_tokens} and "
            f"data.max_prompt_tokens={data.max_prompt_tokens} tokens; widen that range"
        )
    if not data.test_size:
        return PromptSplit(train=prompts, test=[])
    train, test = train_test_split(prompts, data.test_size, data.seed)
    if not train:
        raise ValueError(
            f"data.test_size={data.test_size} leaves no training prompt out of {len(prompts)}; "
            "lower it"
        )
    return PromptSplit(train=train, test=test)


def load_split_prompts(source: str, *, split: str, task: Task = "dialogue", n: int | None = None,
                       data_dir: str | None = None, on_bad_row: Literal["raise", "skip"] = "raise",
                       context: Context = "full") -> list[str]:
    """The prompts of the first `n` good examples of a whole split (e.g. held out for
    evaluation), rendered for `task` and `context` (first_turn: the first `n` distinct opening
    requests); no length filter, no shuffling."""
    return make_prompts([e for e, _ in _split_examples(source, split, n, data_dir, on_bad_row,
                                                       context)], task=task, context=context)


def load_split_clusters(source: str, *, split: str, n: int | None = None,
                        data_dir: str | None = None, on_bad_row: Literal["raise", "skip"] = "raise",
                        context: Context = "full") -> list[str]:
    """One cluster key per prompt of `load_split_prompts` with the same arguments, in its order.

    The key is the row's `cluster` field (hh-harmless: its conversation), else its `kind` (the
    red-team sample's request kind), else the normalised first Human turn (`cluster_of_prompt`).
    """
    return [_cluster_of(e) for e, _ in _split_examples(source, split, n, data_dir, on_bad_row,
                                                       context)]


def _cluster_of(example: HHExample) -> str:
    for field in ("cluster", "kind"):
        if isinstance(example.meta.get(field), str):
            return example.meta[field]
    return cluster_of_prompt(example.prompt)


def _split_examples(source: str, split: str, n: int | None, data_dir: str | None,
                    on_bad_row: Literal["raise", "skip"],
                    context: Context) -> list[tuple[HHExample, str]]:
    """The first `n` examples of a split kept under `context`, with their prompts."""
    if n is not None and n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    if context not in ("full", "first_turn"):
        raise ValueError(f"context must be 'full' or 'first_turn', got {context!r}")
    # first_turn drops repeated requests, so n examples may give fewer prompts: read them all
    limit = n if context == "full" else None
    dataset = load_hh(source, data_dir=data_dir, split=split, on_bad_row=on_bad_row, limit=limit)
    kept = in_context(dataset.examples, context)[:n]
    if not kept:
        raise ValueError(f"{dataset.source} (split {split!r}) holds no usable examples"
                         + (f"; {dataset.skipped} bad row(s) skipped, first: "
                            f"{dataset.skip_reasons[0]}" if dataset.skipped else ""))
    return kept


class PromptStream:
    """An endless, seeded stream of prompt indices: epoch e is a fixed shuffle of all prompts.

    The stream is a pure function of (seed, position), so a checkpoint only stores the
    position, and every process computes the same global batch.
    """

    def __init__(self, n_prompts: int, seed: int) -> None:
        if n_prompts <= 0:
            raise ValueError("the prompt stream needs at least one prompt")
        self.n_prompts = n_prompts
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(self.n_prompts))
            # Own Random instance: independent of the global RNG that sampling uses.
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._orders = {epoch: order}  # keep only the current epoch
        return self._orders[epoch]

    def indices(self, position: int, count: int) -> list[int]:
        """The `count` prompt indices starting at stream `position`."""
        out = []
        for pos in range(position, position + count):
            epoch, offset = divmod(pos, self.n_prompts)
            out.append(self._order(epoch)[offset])
        return out
