"""Bundled texts with human toxicity labels (rlaif/data/labelled/), e.g. to check a judge or evaluator.

    load_labelled("davidson", split="train")  -> [LabelledText(text, toxic, label, row), ...]

"davidson": a subset of Davidson et al. 2017's labelled tweets (MIT license; all hate tweets, and
seeded samples of offensive and 'neither' tweets, about half toxic), split train / validation
(scripts/make_davidson_subset.py; davidson.json is its manifest, LICENSES.md says more). The
tweets are kept as posted: they contain slurs and profanity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.data.rows import read_rows

LABELLED_DIR = Path(__file__).parent / "labelled"
# name -> (file stem in LABELLED_DIR, its splits, the labels of its `class` field)
LABELLED_SOURCES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "davidson": ("davidson", ("train", "validation"), ("hate", "offensive", "neither")),
}


class LabelledDataError(ValueError):
    """A bundled labelled file whose row breaks the format; the message names file, row and field."""


@dataclass(frozen=True)
class LabelledText:
    """One labelled text: toxic or not, its finer label (e.g. hate / offensive / neither), its source row."""

    text: str
    toxic: bool
    label: str
    row: int


def labelled_path(name: str, split: str) -> Path:
    """Path of a bundled labelled file; ValueError naming the choices for an unknown name or split."""
    if name not in LABELLED_SOURCES:
        raise ValueError(f"unknown labelled data set {name!r}; choose one of "
                         f"{sorted(LABELLED_SOURCES)}")
    stem, splits, _ = LABELLED_SOURCES[name]
    if split not in splits:
        raise ValueError(f"labelled data set {name!r} has splits {list(splits)}, got {split!r}")
    return LABELLED_DIR / f"{stem}_{split}.jsonl"


def load_labelled(name: str = "davidson", *, split: str) -> list[LabelledText]:
    """The rows of a bundled labelled data set's split, in file order."""
    path = labelled_path(name, split)
    labels = LABELLED_SOURCES[name][2]
    return [_parse(row, index, path, labels) for index, row in enumerate(read_rows(path))]


def _parse(row: Any, index: int, path: Path, labels: tuple[str, ...]) -> LabelledText:
    """One row {"text", "toxic", "class", "row"} as a LabelledText, or LabelledDataError."""
    where = f"{path} row {index}"
    fix = "rebuild the file with its script (see the manifest's 'script' field)"
    if not isinstance(row, dict):
        raise LabelledDataError(f"{where}: not a JSON object. Fix: {fix}")
    expected = {"text": str, "toxic": bool, "class": str, "row": int}
    for field, kind in expected.items():
        value = row.get(field)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise LabelledDataError(f"{where}: field {field!r} must be {kind.__name__}, got "
                                    f"{value!r}. Fix: {fix}")
    if row["class"] not in labels:
        raise LabelledDataError(f"{where}: field 'class' is {row['class']!r}, expected one of "
                                f"{list(labels)}. Fix: {fix}")
    return LabelledText(text=row["text"], toxic=row["toxic"], label=row["class"], row=row["row"])
