"""Strict parsing of a judge's verdict: a number on the declared scale, or None and why.

A wrong number is worse than no number (it silently trains the policy on noise), so the
parser refuses whenever it is unsure. The rules, in order:

1. Quoted text is ignored: "double-quoted" and “curly-quoted” spans, single-quoted spans
   that start with a verdict label ('Score: 5'), `code spans`, lines starting with ">",
   and <response>...</response> blocks. A judge that quotes the judged text's own
   "Score: 5" is not scoring with it.
2. Verdict candidates are labelled numbers -- `Score: 3.75`, `Rating: -2`, `**Score:** +4`,
   `Final score: 4/5`, `score of 4`, `Score = 4 out of 5` -- and unlabelled fractions whose
   denominator is the scale's top (`**4**/5`, `4/5`, `4 out of 5` on a 1..5 scale). A reply
   that is nothing but a number (`+4`, `-3`, `4.5`, `**4**`) is a candidate too.
3. The FINAL verdict is the last candidate; earlier ones (drafts, quotes the judge did not
   put in quotation marks, the judged text's attempts) never win over it.
4. Unsure -> None, never a made-up number and never the minimum:
   - no candidate at all ("no number");
   - a label after the last candidate with no number (`Score: N/A`, `Rating: between ...`),
     or "between X and Y" after it;
   - a range or alternative right after the number (`Score: 3-4`, `3 or 4`, `3 to 4`);
   - two different values on the final verdict's line, or in the trailing block of
     verdict-only lines (`Score: 3` then `Score: 4` as the last two lines);
   - a labelled fraction out of another denominator (`Score: 8/10` on a 1..5 scale);
   - a value outside the scale (the parser does not fall back to an earlier candidate);
   - a percentage (`Score: 80%`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlaif.judges.base import Scale

_NUM = r"[+-]?\d+(?:\.\d+)?"
_LABEL = r"\b(?:final\s+|overall\s+)?(?:score|rating|verdict|grade)\b"
# Label, optional "is"/"of"/"would be", separators (spaces, ** bold, : or =), the number,
# then an optional "/ 5" or "out of 5".
_LABELED_RE = re.compile(
    rf"{_LABEL}(?:\s+(?:is|of|would\s+be))?[\s*:=]*(?P<num>{_NUM})(?![\d.]*\d)"
    rf"(?:[\s*]*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_FRACTION_RE = re.compile(
    rf"(?<![\w.])\**(?P<num>{_NUM})\**\s*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?)(?![\d.]*\d)",
    re.IGNORECASE,
)
_BARE_RE = re.compile(rf"^\s*\**\s*(?P<num>{_NUM})\s*\**\s*\.?\s*$")
# A verdict label with a colon/equals but no number after it: "Score: N/A", "Rating: unclear".
_EMPTY_LABEL_RE = re.compile(rf"{_LABEL}\s*\**\s*[:=]\s*\**\s*(?![\s*]*[+-]?\d)", re.IGNORECASE)
_BETWEEN_RE = re.compile(rf"\bbetween\s+{_NUM}\s+and\s+{_NUM}", re.IGNORECASE)
_RANGE_AFTER_RE = re.compile(rf"^\s*\**\s*(?:-|–|—|to|or|and)\s*[+-]?\d", re.IGNORECASE)
_PERCENT_AFTER_RE = re.compile(r"^\s*%")
_QUOTED_RES = (
    re.compile(r'"[^"\n]*"'),
    re.compile(r"“[^”]*”"),
    re.compile(rf"'(?=\s*{_LABEL})[^'\n]*'", re.IGNORECASE),
    re.compile(r"`[^`]*`"),
    re.compile(r"^[ \t]*>.*$", re.MULTILINE),
    re.compile(r"<response>.*?</response>", re.IGNORECASE | re.DOTALL),
)


@dataclass(frozen=True)
class Verdict:
    """A parsed value, or None with the reason the parser refused."""

    value: float | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when a value was found."""
        return self.value is not None


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    value: float
    den: float | None
    labeled: bool


def _blank_quotes(text: str) -> str:
    """Replace quoted spans by spaces (same length, so positions and lines stay put)."""
    for pattern in _QUOTED_RES:
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return text


def _candidates(text: str, scale: Scale) -> list[_Candidate]:
    found: dict[int, _Candidate] = {}
    for m in _LABELED_RE.finditer(text):
        den = float(m.group("den")) if m.group("den") else None
        found[m.start("num")] = _Candidate(m.start("num"), m.end(), float(m.group("num")), den, True)
    for m in _FRACTION_RE.finditer(text):
        if m.start("num") in found or float(m.group("den")) != scale.high:
            continue  # a ratio or date such as 1/2, not a verdict on this scale
        found[m.start("num")] = _Candidate(
            m.start("num"), m.end(), float(m.group("num")), float(m.group("den")), False
        )
    if not found:
        bare = _BARE_RE.match(text)
        if bare:
            found[bare.start("num")] = _Candidate(
                bare.start("num"), bare.end("num"), float(bare.group("num")), None, False
            )
    return [found[k] for k in sorted(found)]


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end == -1 else end


def _verdict_only_line(line: str) -> bool:
    """A line holding nothing but one verdict (e.g. 'Score: 4', '**4**/5')."""
    stripped = line.strip().strip("*_ .")
    return bool(stripped) and bool(
        re.fullmatch(rf"(?:{_LABEL}[\s*:=]*)?{_NUM}(?:[\s*]*(?:/|out\s+of)\s*{_NUM})?", stripped, re.I)
    )


def _check_value(value: float, den: float | None, scale: Scale, what: str) -> Verdict:
    if den is not None and den != scale.high:
        return Verdict(None, f"{what} is out of {den:g}, but the scale is {scale.low:g} to {scale.high:g}")
    if not scale.contains(value):
        return Verdict(None, f"{what} {value:g} is outside the scale {scale.low:g} to {scale.high:g}")
    return Verdict(value)


def parse_score(text: str | None, scale: Scale) -> Verdict:
    """The final verdict of a free-text reply on `scale`, or None with the reason."""
    if not text or not text.strip():
        return Verdict(None, "empty reply")
    clean = _blank_quotes(text)
    cands = _candidates(clean, scale)
    if not cands:
        return Verdict(None, "no score found in the reply")
    last = cands[-1]
    tail = clean[last.end:]
    if _RANGE_AFTER_RE.match(tail) or _PERCENT_AFTER_RE.match(tail):
        return Verdict(None, "the final score is a range, alternative or percentage, not one number")
    if _EMPTY_LABEL_RE.search(tail) or _BETWEEN_RE.search(clean[_line_bounds(clean, last.start)[0]:]):
        return Verdict(None, "the final verdict gives no single number (e.g. 'between 3 and 4')")
    line_start, line_end = _line_bounds(clean, last.start)
    same_line = {c.value for c in cands if line_start <= c.start < line_end}
    if len(same_line) > 1:
        return Verdict(None, f"conflicting scores on the final verdict line: {sorted(same_line)}")
    # Trailing block of verdict-only lines: the judge wrote two different final answers.
    lines = [ln for ln in clean[:line_end].split("\n") if ln.strip()]
    block: list[float] = []
    for ln in reversed(lines):
        if not _verdict_only_line(ln):
            break
        block.extend(c.value for c in _candidates(ln, scale))
    if len(set(block)) > 1:
        return Verdict(None, f"conflicting final verdicts: {block[::-1]}")
    return _check_value(last.value, last.den, scale, "score")


def parse_criteria(text: str | None, names: Sequence[str], scale: Scale) -> dict[str, Verdict]:
    """Per-criterion verdicts from lines such as 'helpfulness: 7' (the last one per name)."""
    clean = _blank_quotes(text or "")
    out: dict[str, Verdict] = {}
    for name in names:
        pattern = re.compile(
            rf"\b{re.escape(name)}\b[\s*]*(?:score)?[\s*]*[:=][\s*]*(?P<num>{_NUM})(?![\d.]*\d)"
            rf"(?:[\s*]*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?))?(?P<after>[^\n]*)",
            re.IGNORECASE,
        )
        matches = list(pattern.finditer(clean))
        if not matches:
            out[name] = Verdict(None, f"no '{name}: <number>' line in the reply")
            continue
        m = matches[-1]
        if _RANGE_AFTER_RE.match(m.group("after")) or _PERCENT_AFTER_RE.match(m.group("after")):
            out[name] = Verdict(None, f"{name} is a range or percentage, not one number")
            continue
        den = float(m.group("den")) if m.group("den") else None
        out[name] = _check_value(float(m.group("num")), den, scale, name)
    return out


def check_tool_value(value: object, scale: Scale, what: str = "score") -> Verdict:
    """Validate a number from a tool call: numeric (or a plain numeric string), finite, in scale."""
    if isinstance(value, bool) or value is None:
        return Verdict(None, f"{what} is {value!r}, not a number")
    if isinstance(value, str):
        if not re.fullmatch(rf"\s*{_NUM}\s*", value):
            return Verdict(None, f"{what} is {value!r}, not a number")
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return Verdict(None, f"{what} is {value!r}, not a finite number")
    return _check_value(float(value), None, scale, what)
