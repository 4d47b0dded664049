"""Anthropic HH-RLHF data: transcripts -> turns -> prompts, chosen/rejected pairs, splits.

An HH row holds two full transcripts, `chosen` and `rejected`, in the format

    "\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant: ..."

that share everything but the final assistant reply. `load_hh` reads rows from a hub id
(`Anthropic/hh-rlhf`, with `data_dir` = harmless-base, helpful-base, ...), a local
json/jsonl/parquet file or folder (all through `datasets`), or the bundled sample
(`"sample"`), and turns each row into an `HHExample(prompt, chosen, rejected, meta)`.

A bad row is never dropped silently: it raises `HHFormatError` naming the file, row and
field, or, with `on_bad_row="skip"`, it is dropped, counted in `HHDataset.skipped` and
logged.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

HUMAN = "Human"
ASSISTANT = "Assistant"
ASSISTANT_MARKER = "\n\nAssistant:"
SUMMARIZE_INSTRUCTION = "Summarize the following conversation."
SUMMARY_CUE = "Summary:"
SAMPLE_SOURCE = "sample"
LOCAL_SUFFIXES = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")

# A role marker starts a blank line: "\n\nHuman:" / "\n\nAssistant:". Spaces or tabs on the
# blank line are tolerated; a bare "Human:" inside a turn is text, as in the real data.
_MARKER = re.compile(r"\n[ \t]*\n[ \t]*(Human|Assistant):")

T = TypeVar("T")


class HHFormatError(ValueError):
    """An HH row or transcript that does not follow the format; the message says where and how to fix it."""

    def __init__(self, problem: str, *, where: str = "", fix: str = "") -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        text = f"{where}: {problem}" if where else problem
        super().__init__(f"{text}. Fix: {fix}" if fix else text)


@dataclass(frozen=True)
class Turn:
    """One turn of a dialogue: who speaks and what they say (stripped)."""

    role: Literal["human", "assistant"]
    text: str


@dataclass(frozen=True)
class HHExample:
    """One HH comparison: the shared prompt and the two final assistant replies."""

    prompt: str  # dialogue up to and including the final "\n\nAssistant:"
    chosen: str  # final assistant reply of the chosen transcript, stripped
    rejected: str  # final assistant reply of the rejected transcript, stripped
    meta: dict[str, Any] = field(default_factory=dict)  # row, source, extra columns


@dataclass
class HHDataset:
    """Examples loaded by `load_hh`, with the bad rows that were skipped and why."""

    examples: list[HHExample]
    skipped: int
    skipped_rows: list[tuple[int, str]]
    source: str

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[HHExample]:
        return iter(self.examples)

    def __getitem__(self, index: int) -> HHExample:
        return self.examples[index]


_FORMAT_FIX = (
    "write '\\n\\nHuman: <text>\\n\\nAssistant: <text>' turns, alternating, none empty, "
    "Human first and Assistant last"
)


def parse_transcript(text: str, where: str = "") -> list[Turn]:
    """Parse an HH transcript into alternating turns, Human first and Assistant last."""
    if not isinstance(text, str):
        raise HHFormatError(
            f"transcript must be a string, got {type(text).__name__} ({_preview(text)})",
            where=where, fix=_FORMAT_FIX,
        )
    # Surrounding whitespace is tolerated: "Human: hi\n\nAssistant: yo  " parses like the
    # canonical "\n\nHuman: hi\n\nAssistant: yo".
    body = "\n\n" + text.strip()
    parts = _MARKER.split(body)
    # parts = [before first marker, role, text, role, text, ...]
    if parts[0].strip() or len(parts) == 1:
        raise HHFormatError(
            f"missing 'Human:' marker at the start, transcript begins {_preview(text)}",
            where=where, fix=_FORMAT_FIX,
        )
    turns: list[Turn] = []
    for i in range(1, len(parts), 2):
        role, turn_text = parts[i], parts[i + 1].strip()
        expected = HUMAN if len(turns) % 2 == 0 else ASSISTANT
        if role != expected:
            raise HHFormatError(
                f"turn {len(turns) + 1} is '{role}:' but '{expected}:' was expected "
                f"(roles out of order)", where=where, fix=_FORMAT_FIX,
            )
        if not turn_text:
            raise HHFormatError(
                f"turn {len(turns) + 1} ('{role}:') is empty", where=where, fix=_FORMAT_FIX
            )
        turns.append(Turn(role=role.lower(), text=turn_text))  # type: ignore[arg-type]
    if turns[-1].role != "assistant":
        raise HHFormatError(
            f"missing final 'Assistant:' turn, transcript ends {_preview(text[-60:])}",
            where=where, fix=_FORMAT_FIX,
        )
    return turns


def format_turns(turns: Sequence[Turn]) -> str:
    """Write turns back in canonical HH format ("\\n\\nHuman: ...\\n\\nAssistant: ...")."""
    return "".join(f"\n\n{t.role.capitalize()}: {t.text}" for t in turns)


def split_prompt_response(transcript: str, where: str = "") -> tuple[str, str]:
    """Split a transcript into (prompt up to and including the final "\\n\\nAssistant:", final reply)."""
    turns = parse_transcript(transcript, where)
    # The prompt is rebuilt canonically: identical to the raw text for well-formed rows,
    # and whitespace quirks do not leak into what the policy continues.
    return format_turns(turns[:-1]) + ASSISTANT_MARKER, turns[-1].text


def dialogue_of(prompt: str) -> str:
    """The dialogue of a prompt without the leading blank line and the final Assistant marker."""
    if prompt.endswith(ASSISTANT_MARKER):
        prompt = prompt[: -len(ASSISTANT_MARKER)]
    return prompt.strip()


def make_prompts(examples: Iterable[HHExample | str],
                 task: Literal["dialogue", "summarize"] = "dialogue") -> list[str]:
    """Build policy prompts from examples (or prompt strings) for a task.

    dialogue:  the dialogue up to and including the final "\\n\\nAssistant:" (what the
               assistant continues).
    summarize: the walk-through's instruction, then the dialogue without the final
               Assistant marker, then a "Summary:" cue so the model writes the summary:
               "Summarize the following conversation.\\n\\nHuman: ...\\n\\nSummary:".
    """
    prompts = [e.prompt if isinstance(e, HHExample) else e for e in examples]
    if task == "dialogue":
        return prompts
    if task == "summarize":
        return [f"{SUMMARIZE_INSTRUCTION}\n\n{dialogue_of(p)}\n\n{SUMMARY_CUE}" for p in prompts]
    raise ValueError(f"task must be 'dialogue' or 'summarize', got {task!r}")


def filter_by_length(texts: Sequence[str], tokenizer: Any, max_tokens: int,
                     min_tokens: int = 1) -> list[int]:
    """Indices of texts whose token count (special tokens included) lies in [min_tokens, max_tokens]."""
    if min_tokens < 0 or max_tokens < min_tokens:
        raise ValueError(
            f"need 0 <= min_tokens <= max_tokens, got min_tokens={min_tokens}, "
            f"max_tokens={max_tokens}"
        )
    if not texts:
        return []
    # Count what the policy will see: special tokens included (T5 appends </s>), and no
    # truncation, or every long text would count as exactly model_max_length.
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
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


def sample_path(split: Literal["train", "test"]) -> Path:
    """Path of the bundled HH-format sample file for a split."""
    if split not in ("train", "test"):
        raise ValueError(f"the bundled sample has splits 'train' and 'test', got {split!r}")
    return Path(__file__).parent / "sample" / f"hh_sample_{split}.jsonl"


def load_hh(source: str = "Anthropic/hh-rlhf", *, data_dir: str | None = None,
            split: str = "train", on_bad_row: Literal["raise", "skip"] = "raise",
            limit: int | None = None) -> HHDataset:
    """Load HH rows from a hub id or local folder, a local .json/.jsonl/.parquet file, or "sample".

    A hub id or folder goes through `datasets.load_dataset(source, data_dir=..., split=...)`.
    A single local file is one split (`split` is not used for it). "sample" is the bundled
    sample, `split` "train" or "test". `limit` stops after that many good examples.
    """
    if on_bad_row not in ("raise", "skip"):
        raise ValueError(f"on_bad_row must be 'raise' or 'skip', got {on_bad_row!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    rows, name = _open_rows(source, data_dir=data_dir, split=split)
    examples: list[HHExample] = []
    skipped_rows: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        if limit is not None and len(examples) >= limit:
            break
        try:
            examples.append(parse_row(row, index, name))
        except HHFormatError as err:
            if on_bad_row == "raise":
                raise
            skipped_rows.append((index, str(err)))
            logger.debug("skipped bad HH row: %s", err)
    if skipped_rows:
        logger.warning(
            "%s: skipped %d bad row(s) of %d read; first: %s", name, len(skipped_rows),
            len(examples) + len(skipped_rows), skipped_rows[0][1],
        )
    return HHDataset(examples=examples, skipped=len(skipped_rows), skipped_rows=skipped_rows,
                     source=name)


def parse_row(row: Mapping[str, Any], index: int, source: str) -> HHExample:
    """Turn one HH row ({"chosen", "rejected", ...}) into an HHExample, or raise HHFormatError."""
    where = f"{source} row {index}"
    if not isinstance(row, Mapping):
        raise HHFormatError(
            f"row must be an object with 'chosen' and 'rejected', got {type(row).__name__}",
            where=where, fix="Write one JSON object per row",
        )
    for name in ("chosen", "rejected"):
        if name not in row:
            raise HHFormatError(
                f"missing field '{name}' (fields present: {sorted(row)})", where=where,
                fix="Each HH row needs 'chosen' and 'rejected' transcripts",
            )
    prompt, chosen = split_prompt_response(row["chosen"], f"{where} field 'chosen'")
    rejected_prompt, rejected = split_prompt_response(row["rejected"], f"{where} field 'rejected'")
    if rejected_prompt != prompt:
        raise HHFormatError(
            "'chosen' and 'rejected' differ before the final assistant reply "
            f"(chosen prompt {_preview(prompt[-60:])}, rejected prompt "
            f"{_preview(rejected_prompt[-60:])})", where=where,
            fix="Both transcripts must share every turn but the last assistant reply",
        )
    extras = {k: v for k, v in row.items() if k not in ("chosen", "rejected")}
    return HHExample(prompt=prompt, chosen=chosen, rejected=rejected,
                     meta={"row": index, "source": source, **extras})


def _open_rows(source: str, *, data_dir: str | None,
               split: str) -> tuple[Iterable[Mapping[str, Any]], str]:
    """Rows of a source as dicts, and the name used in error messages."""
    import datasets  # heavy; imported only when data is read

    if source == SAMPLE_SOURCE:
        path = sample_path(split)  # type: ignore[arg-type]
        return _load_file(datasets, path), str(path)
    path = Path(source).expanduser()
    if path.is_file():
        return _load_file(datasets, path), str(path)
    if _builder_for(path) is not None and not path.exists():
        raise FileNotFoundError(
            f"HH data file {path} does not exist; pass an existing .json/.jsonl/.parquet "
            f"file, a folder, a hub id such as 'Anthropic/hh-rlhf', or 'sample'"
        )
    name = f"{source}" + (f"/{data_dir}" if data_dir else "") + f" [{split}]"
    return datasets.load_dataset(source, data_dir=data_dir, split=split), name


def _load_file(datasets: Any, path: Path) -> Any:
    """Load one local json/jsonl/parquet file (optionally compressed) through `datasets`."""
    builder = _builder_for(path)
    if builder is None:
        raise ValueError(
            f"{path}: unsupported file type; use .json, .jsonl or .parquet "
            f"(optionally {', '.join(COMPRESSED_SUFFIXES)} compressed)"
        )
    return datasets.load_dataset(builder, data_files=str(path), split="train")


def _builder_for(path: Path) -> str | None:
    """The `datasets` builder for a local file name, or None if the suffix is not supported."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes = suffixes[:-1]
    return LOCAL_SUFFIXES.get(suffixes[-1]) if suffixes else None


def _preview(value: Any, width: int = 60) -> str:
    """A short repr of a value for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
