"""Anthropic HH-RLHF data: transcripts -> turns -> (prompt, chosen, rejected) examples.

An HH row holds two full transcripts, `chosen` and `rejected`, in the format

    "\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant: ..."

that share everything but the final assistant reply. `load_hh` reads rows from a hub id
(`Anthropic/hh-rlhf`, with `data_dir` = harmless-base, helpful-base, ...), a local file
(.json/.jsonl, plain or .gz/.bz2/.xz as the hub ships them, or .parquet), a local folder laid
out like the hub repository (`<folder>/harmless-base/test.jsonl.gz`, chosen by `data_dir` and
`split`), or the bundled sample (`"sample"`), and turns each row into an
`HHExample(prompt, chosen, rejected, meta)`. Prompts, length filter and split: `prompts.py`.

Quirks of the real data are data, not errors. The released files hold turns that are empty
(`"\\n\\nAssistant:"` followed by nothing, mid-dialogue or as the final reply) and two
turns of the same role in a row (`Assistant:` twice, e.g. a reply cut in two). The rule:

* an empty turn stays an empty turn (an empty final reply is the empty string);
* consecutive turns of the same role, Human or Assistant, merge into one turn, their
  non-empty texts joined by a blank line ("\\n\\n"),

so every parsed transcript alternates Human/Assistant, Human first and Assistant last, which
chat templates require, and rows with these quirks load. The blank line keeps
the two messages apart as paragraphs, and the merged turn parses back to itself.

Still refused, with `HHFormatError` naming the file, row and field and the fix: rows that are
not HH transcripts (no role markers, text before the first `Human:`, a first turn that is not
Human, no final `Assistant:` turn, a non-string transcript, a missing field, a row that is not
an object) and chosen/rejected pairs that differ before the final reply. A file that cannot
be read (not UTF-8, not JSON, empty, a broken archive) raises `rows.DataFileError` naming the
file. With `on_bad_row="skip"` a bad row is dropped, counted in `HHDataset.skipped`, its
reason kept (`HHDataset.skip_reasons` shows the first few) and a warning is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlaif.data.heldout import is_held_out_file, is_held_out_hub, keep_row, note_held_out
from rlaif.data.rows import COMPRESSED_SUFFIXES, file_kind, indexed_rows, split_files

logger = logging.getLogger(__name__)

HUMAN = "Human"
ASSISTANT = "Assistant"
ASSISTANT_MARKER = "\n\nAssistant:"
SAMPLE_SOURCE = "sample"
# Bundled sources: name -> file stem in rlaif/data/sample/ (splits "train" and "test").
# "sample": ordinary requests (scripts/make_hh_sample.py); "redteam": provocative requests
# with a polite chosen and a rude rejected reply (scripts/make_redteam_sample.py);
# "hh-harmless": the even rows of Anthropic hh-rlhf harmless-base/test, split by conversation
# (scripts/make_hh_harmless.py; rows carry `row` and `cluster`; hh_harmless.json is its manifest).
BUNDLED_SOURCES = {"sample": "hh_sample", "redteam": "redteam", "hh-harmless": "hh_harmless"}
MERGE_SEPARATOR = "\n\n"  # between the texts of consecutive same-role turns
SKIP_REASONS_SHOWN = 5

# A role marker starts a blank line: "\n\nHuman:" / "\n\nAssistant:". Spaces or tabs on the
# blank line are tolerated; a bare "Human:" inside a turn is text, as in the real data.
_MARKER = re.compile(r"\n[ \t]*\n[ \t]*(Human|Assistant):")


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
    """One turn of a dialogue: who speaks and what they say (stripped; may be empty)."""

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
    skipped_rows: list[tuple[int, str]]  # (row within its file, reason), every skipped row
    source: str

    @property
    def skip_reasons(self) -> list[str]:
        """The reasons of the first few skipped rows (each names file, row and field), to show."""
        return [reason for _, reason in self.skipped_rows[:SKIP_REASONS_SHOWN]]

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[HHExample]:
        return iter(self.examples)

    def __getitem__(self, index: int) -> HHExample:
        return self.examples[index]


_FORMAT_FIX = (
    "write '\\n\\nHuman: <text>\\n\\nAssistant: <text>' turns, Human first and Assistant last"
)


def parse_transcript(text: str, where: str = "") -> list[Turn]:
    """Parse an HH transcript into alternating turns, Human first and Assistant last.

    Empty turns stay (empty text); consecutive same-role turns merge into one, their
    non-empty texts joined by a blank line (the module docstring says why).
    """
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
    if parts[1] != HUMAN:
        raise HHFormatError(
            f"turn 1 is '{parts[1]}:' but '{HUMAN}:' was expected (roles out of order)",
            where=where, fix=_FORMAT_FIX,
        )
    turns: list[Turn] = []
    for i in range(1, len(parts), 2):
        role, turn_text = parts[i].lower(), parts[i + 1].strip()
        if turns and turns[-1].role == role:  # same role twice in a row: one turn
            joined = MERGE_SEPARATOR.join(t for t in (turns[-1].text, turn_text) if t)
            turns[-1] = Turn(role=role, text=joined)  # type: ignore[arg-type]
        else:
            turns.append(Turn(role=role, text=turn_text))  # type: ignore[arg-type]
    if turns[-1].role != "assistant":
        raise HHFormatError(
            f"missing final 'Assistant:' turn, transcript ends {_preview(text[-60:])}",
            where=where, fix=_FORMAT_FIX,
        )
    return turns


def format_turns(turns: Sequence[Turn]) -> str:
    """Write turns back in canonical HH format ("\\n\\nHuman: ...\\n\\nAssistant: ...").

    An empty turn is its bare marker ("\\n\\nAssistant:"), as in the real data.
    """
    return "".join(f"\n\n{t.role.capitalize()}:" + (f" {t.text}" if t.text else "")
                   for t in turns)


def split_prompt_response(transcript: str, where: str = "") -> tuple[str, str]:
    """Split a transcript into (prompt up to and including the final "\\n\\nAssistant:", final reply)."""
    turns = parse_transcript(transcript, where)
    # The prompt is rebuilt canonically: identical to the raw text for well-formed rows,
    # and whitespace quirks do not leak into what the policy continues.
    return format_turns(turns[:-1]) + ASSISTANT_MARKER, turns[-1].text


def sample_path(split: Literal["train", "test"], source: str = SAMPLE_SOURCE) -> Path:
    """Path of a bundled HH-format file ("sample", "redteam", "hh-harmless": BUNDLED_SOURCES) for a split."""
    if split not in ("train", "test"):
        raise ValueError(f"the bundled sample has splits 'train' and 'test', got {split!r}")
    return Path(__file__).parent / "sample" / f"{BUNDLED_SOURCES[source]}_{split}.jsonl"


def load_hh(source: str = "Anthropic/hh-rlhf", *, data_dir: str | None = None,
            split: str = "train", on_bad_row: Literal["raise", "skip"] = "raise",
            limit: int | None = None) -> HHDataset:
    """Load HH rows from a hub id, a local folder or file, or "sample" (see the module docstring).

    A single local file is one split (`split` is not used for it). A folder laid out like the
    hub repository is read directly (`<source>/<data_dir>/<split>.jsonl.gz`); other folders
    and hub ids go through `datasets.load_dataset(source, data_dir=..., split=...)`. "sample"
    is the bundled sample, `split` "train" or "test". `limit` stops after that many good
    examples. The odd rows of hh-rlhf's harmless-base/test are held out: dropped while
    reading (`rlaif.data.heldout`), `meta["row"]` keeps the original index.
    """
    if on_bad_row not in ("raise", "skip"):
        raise ValueError(f"on_bad_row must be 'raise' or 'skip', got {on_bad_row!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    parts, name = _open_rows(source, data_dir=data_dir, split=split)
    examples: list[HHExample] = []
    skipped_rows: list[tuple[int, str]] = []
    def full() -> bool:
        return limit is not None and len(examples) >= limit

    for part_name, rows in parts:
        if full():
            break  # files are read lazily: the ones not needed are never opened
        for index, row in rows:
            if full():
                break
            try:
                examples.append(parse_row(row, index, part_name))
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


Rows = Iterable[tuple[int, Mapping[str, Any]]]  # (0-based row index within its file, row)


def _file_rows(path: Path) -> Rows:
    """(index, row) of a local file; the odd rows of hh-rlhf harmless-base/test never read."""
    if not is_held_out_file(path):
        return indexed_rows(path)
    note_held_out(str(path))
    return indexed_rows(path, keep=keep_row)


def _open_rows(source: str, *, data_dir: str | None,
               split: str) -> tuple[list[tuple[str, Rows]], str]:
    """(name for error messages, rows) of each file of a source, and the source's name."""
    if source in BUNDLED_SOURCES:
        path = sample_path(split, source)  # type: ignore[arg-type]
        return [(str(path), indexed_rows(path))], str(path)
    path = Path(source).expanduser()
    if path.is_file():
        return [(str(path), _file_rows(path))], str(path)
    if file_kind(path) is not None and not path.exists():
        raise FileNotFoundError(
            f"HH data file {path} does not exist; pass an existing .json/.jsonl/.parquet "
            f"file (optionally {', '.join(COMPRESSED_SUFFIXES)} compressed), a folder, a hub "
            f"id such as 'Anthropic/hh-rlhf', or 'sample'"
        )
    name = f"{source}" + (f"/{data_dir}" if data_dir else "") + f" [{split}]"
    if path.is_dir() and data_dir and not (path / data_dir).is_dir():
        present = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise FileNotFoundError(
            f"{path} has no folder data_dir={data_dir!r}; folders present: {present}. Pass one "
            "of them, e.g. harmless-base for a copy of Anthropic/hh-rlhf"
        )
    files = split_files(path, data_dir, split) if path.is_dir() else []
    if files:
        return [(str(f), _file_rows(f)) for f in files], name
    held_out = is_held_out_hub(source, data_dir, split)  # raises for a split it cannot guard
    import datasets  # heavy; imported only for the hub (or an unusual folder layout)

    rows = datasets.load_dataset(source, data_dir=data_dir, split=split)
    if held_out:
        note_held_out(name)
        return [(name, ((i, rows[i]) for i in range(0, len(rows), 2)))], name
    return [(name, enumerate(rows))], name


def _preview(value: Any, width: int = 60) -> str:
    """A short repr of a value for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."

