"""Judge prompt templates (`prompts/*.yaml`): the rubric, its scale and its answer format.

A template is data, not code:

    name: toxicity
    description: ...
    scale: [-5, 5]            # low, high; higher is always better
    system: |                 # the rubric; says the judged text is untrusted data
      ...
    user: |                   # {prompt} and {response}, each inside its own tags
      <conversation>{prompt}</conversation>
      <response>{response}</response>
    criteria:                 # optional: several named sub-scores in one request
      - {name: helpfulness, rubric: ...}
    answer_format: |          # how to answer in plain text (the fallback when no tool call)
      ... Score: <number>

A pairwise template (`PairwiseTemplate`, e.g. `prompts/pairwise-harmlessness.yaml`) has no
scale or criteria; its user text holds {response_a} and {response_b} (the two judged
replies, each inside its own tags), and {answer_lines} is the two final lines
"Preference: <A, B or tie>" and "Strength: <a number from 0 to 1>".

Placeholders: {prompt}, {response} (the judged text), {low}, {high} (the scale),
{criteria} (one "- name: rubric" line per scored criterion), {answer_lines} (the final
verdict lines to write: "Score: <number>", or one "name: <number>" line per criterion),
{answer_format}.

Rendering is one pass of `re.sub` over the template's own text, so the judged text is
inserted verbatim and never re-scanned: braces in it are harmless (no `str.format`), and
a response containing "{prompt}" stays literal. Delimiter tags that appear inside the
judged text (e.g. "</response>") are defused so it cannot close its own box early.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rlaif.judges.base import JudgeError, Sample, Scale
from rlaif.judges.spec import read_yaml

PLACEHOLDERS = ("prompt", "response", "response_a", "response_b", "low", "high", "criteria", "answer_lines",
                "answer_format")
JUDGED = ("prompt", "response", "response_a", "response_b")  # untrusted text goes in these
PAIRWISE_ANSWER_LINES = "Preference: <A, B or tie>\nStrength: <a number from 0 to 1>"
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# Any {identifier}: used to catch typos such as {reponse} when a template is loaded.
_ANY_FIELD_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# <tag> {prompt} </tag>: the tags that delimit judged text, defused inside that text.
_DELIMITER_RE = re.compile(r"<([A-Za-z_][\w-]*)>\s*\{(?:" + "|".join(JUDGED) + r")\}\s*</\1>")


class Criterion(BaseModel):
    """One named criterion of a multi-criteria template, with its one-line rubric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    rubric: str = Field(min_length=1)


class PromptTemplate(BaseModel):
    """A judge prompt: system rubric, user text with the judged sample, scale, answer format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    scale: tuple[float, float]
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)
    criteria: list[Criterion] | None = None
    answer_format: str = Field(min_length=1)

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        Scale(*v)  # raises with the values and the rule
        return v

    @model_validator(mode="after")
    def _check_placeholders(self) -> PromptTemplate:
        _check_fields(self, required=("response",), kind="a pointwise template", other="pairwise")
        if self.criteria is not None:
            names = [c.name for c in self.criteria]
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"criteria names must be unique and non-empty, got {names}")
        return self

    @property
    def score_scale(self) -> Scale:
        """The declared scale as a `Scale`."""
        return Scale(*self.scale)

    def select_criteria(self, wanted: Sequence[str] | None) -> list[Criterion] | None:
        """The criteria a judge scores: `wanted` (checked against the template) or all of them."""
        if wanted is None:
            return list(self.criteria) if self.criteria else None
        known = {c.name: c for c in self.criteria or []}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise JudgeError(
                f"prompt template {self.name!r} has no criteria {unknown}; "
                f"it defines {sorted(known) or 'none'} "
                f"(use a multi-criteria template such as 'hhh', or drop `criteria:`)"
            )
        return [known[w] for w in wanted]


def _check_fields(template: BaseModel, required: Sequence[str], kind: str, other: str) -> None:
    """The user text holds every `required` placeholder; no text uses an unknown one."""
    for name in required:
        if "{" + name + "}" not in template.user:  # type: ignore[attr-defined]
            raise ValueError(
                f"user text must contain {{{name}}} (where the judged text goes in {kind}; "
                f"a {other} template is loaded by a {other} judge)"
            )
    for field in ("system", "user", "answer_format"):
        for m in _ANY_FIELD_RE.finditer(getattr(template, field)):
            if m.group(1) not in PLACEHOLDERS:
                raise ValueError(
                    f"{field} uses unknown placeholder {{{m.group(1)}}}; "
                    f"known placeholders: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                )


class PairwiseTemplate(BaseModel):
    """A pairwise judge prompt: system rubric, user text with the prompt and two replies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)
    answer_format: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_placeholders(self) -> PairwiseTemplate:
        _check_fields(self, required=("response_a", "response_b"), kind="a pairwise template", other="pointwise")
        return self


@dataclass(frozen=True)
class RenderedPrompt:
    """The two texts sent to the model."""

    system: str
    user: str


def load_template(ref: str | Path) -> PromptTemplate:
    """Load a template from a built-in name (`toxicity`) or a YAML path."""
    return _load(ref, PromptTemplate)


def load_pairwise_template(ref: str | Path) -> PairwiseTemplate:
    """Load a pairwise template from a built-in name (`pairwise-harmlessness`) or a YAML path."""
    return _load(ref, PairwiseTemplate)


def _load(ref: str | Path, model: Any) -> Any:
    path, data = read_yaml("prompts", ref)
    if not isinstance(data, dict):
        raise JudgeError(f"{path}: a prompt template must be a mapping, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    pairwise = "{response_a}" in str(data.get("user", ""))
    if pairwise and model is PromptTemplate:
        raise JudgeError(f"{path}: a pairwise template ({{response_a}}, {{response_b}}) cannot score one "
                         "response; use it in a `type: pairwise` judge, or name a pointwise template "
                         "such as toxicity")
    if not pairwise and model is PairwiseTemplate and "{response}" in str(data.get("user", "")):
        raise JudgeError(f"{path}: a pointwise template ({{response}}) cannot compare two responses; "
                         "a `type: pairwise` judge needs one with {response_a} and {response_b}, "
                         "such as pairwise-harmlessness")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise JudgeError(f"{path}: invalid prompt template\n" + "\n".join(lines)) from None


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _defuse(text: str, tags: Sequence[str]) -> str:
    """Break delimiter tags inside judged text ("</response>" -> "</ response>")."""
    for tag in tags:
        text = re.sub(rf"<(/?)\s*({re.escape(tag)})(?=[\s>/])", r"<\1 \2", text, flags=re.IGNORECASE)
    return text


def _substitute(text: str, values: dict[str, str]) -> str:
    # One pass: inserted values are never scanned again, so braces in them stay literal.
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], text)


def _render(template: PromptTemplate | PairwiseTemplate, judged: dict[str, str], fixed: dict[str, str]) -> RenderedPrompt:
    """Fill `template`: trusted `fixed` values first, then the `judged` texts (verbatim, defused)."""
    tags = sorted({m.group(1) for m in _DELIMITER_RE.finditer(template.user)})
    fixed = {**fixed, **{name: "{" + name + "}" for name in JUDGED}}
    # The answer format belongs to the template (trusted): resolve it first, then insert.
    answer = _substitute(template.answer_format, {**fixed, "answer_format": ""})
    values = {**fixed, "answer_format": answer, **{k: _defuse(v, tags) for k, v in judged.items()}}
    return RenderedPrompt(
        system=_substitute(template.system, values).strip(),
        user=_substitute(template.user, values).strip(),
    )


def render(
    template: PromptTemplate, sample: Sample, criteria: Sequence[Criterion] | None = None
) -> RenderedPrompt:
    """Fill a template with one sample (judged text inserted verbatim, delimiters defused)."""
    low, high = template.scale
    if criteria:
        answer_lines = "\n".join(f"{c.name}: <number>" for c in criteria)
    else:
        answer_lines = "Score: <number>"
    fixed = {
        "low": _fmt_number(low),
        "high": _fmt_number(high),
        "criteria": "\n".join(f"- {c.name}: {c.rubric}" for c in criteria or []),
        "answer_lines": answer_lines,
    }
    return _render(template, {"prompt": sample.prompt, "response": sample.response}, fixed)


def render_pair(template: PairwiseTemplate, prompt: str, first: str, second: str) -> RenderedPrompt:
    """Fill a pairwise template: `first` is shown as reply A, `second` as reply B."""
    fixed = {"low": "0", "high": "1", "criteria": "", "answer_lines": PAIRWISE_ANSWER_LINES}
    return _render(template, {"prompt": prompt, "response_a": first, "response_b": second}, fixed)
