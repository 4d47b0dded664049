"""Policy prompts from HH examples: task rendering, token-length filter, seeded split, stream.

    load_hh rows -> make_prompts(task) -> filter_by_length -> train_test_split -> PromptSplit
                                                                   PromptStream -> batches

Chat prompts (`task="chat"`) stay plain dialogues here: `rlaif.data.chat` renders them through the
tokenizer's chat template when they are tokenised for the policy (the length filter counts that).
`load_prompt_split(data, tokenizer)` runs the whole chain for a run's `data:` config section;
`load_split_prompts(source, split=...)` renders the first prompts of a whole split (evaluation).
`PromptStream` is the endless, seeded order in which the trainer takes the training prompts.
Nothing here imports torch: the tokenizer is only called.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from rlaif.data.chat import encode_prompts
from rlaif.data.hh import ASSISTANT_MARKER, HHExample, load_hh

if TYPE_CHECKING:  # only a type: keeps this module light to import
    from rlaif.config import DataConfig

SUMMARIZE_INSTRUCTION = "Summarize the following conversation."
SUMMARY_CUE = "Summary:"

T = TypeVar("T")
Task = Literal["dialogue", "summarize", "chat"]


def dialogue_of(prompt: str) -> str:
    """The dialogue of a prompt without the leading blank line and the final Assistant marker."""
    if prompt.endswith(ASSISTANT_MARKER):
        prompt = prompt[: -len(ASSISTANT_MARKER)]
    return prompt.strip()


def make_prompts(examples: Iterable[HHExample | str], task: Task = "dialogue") -> list[str]:
    """Build policy prompts from examples (or prompt strings) for a task.

    dialogue:  the dialogue up to and including the final "\\n\\nAssistant:" (what the
               assistant continues).
    summarize: the walk-through's instruction, then the dialogue without the final
               Assistant marker, then a "Summary:" cue so the model writes the summary:
               "Summarize the following conversation.\\n\\nHuman: ...\\n\\nSummary:".
    chat:      the dialogue prompt as it is; the policy's input is rendered through the chat
               template at tokenisation (`rlaif.data.chat`), judges see this plain text.
    """
    prompts = [e.prompt if isinstance(e, HHExample) else e for e in examples]
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
    prompts = make_prompts(dataset.examples, task=data.task)
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
                       data_dir: str | None = None,
                       on_bad_row: Literal["raise", "skip"] = "raise") -> list[str]:
    """The prompts of the first `n` good examples of a whole split (e.g. held out for
    evaluation), rendered for `task`; no length filter, no shuffling."""
    if n is not None and n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    dataset = load_hh(source, data_dir=data_dir, split=split, on_bad_row=on_bad_row, limit=n)
    prompts = make_prompts(dataset.examples, task=task)
    if not prompts:
        raise ValueError(f"{dataset.source} (split {split!r}) holds no usable examples"
                         + (f"; {dataset.skipped} bad row(s) skipped, first: "
                            f"{dataset.skip_reasons[0]}" if dataset.skipped else ""))
    return prompts


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
