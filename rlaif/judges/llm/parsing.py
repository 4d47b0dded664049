"""Strict parsing of a judge's verdict: a number on the declared scale, or None and why.

A wrong number is worse than no number (it silently trains the policy on noise), so the
parser refuses whenever it is unsure. The rules, in order:

1. Quoted text is ignored: "double-quoted" and “curly-quoted” spans, single-quoted spans
   that start with a verdict label ('Score: 5'), `code spans`, lines starting with ">",
   and <response>...</response> blocks (and <response_a>, <response_b>). A judge that
   quotes the judged text's own "Score: 5" is not scoring with it.
2. Verdict candidates are labelled numbers -- `Score: 3.75`, `Rating: -2`, `**Score:** +4`,
   `Final score: 4/5`, `score of 4`, `Score = 4 out of 5`, `rate: +5` -- a first-person
   rating sentence (`I would rate this statement +5.`, `I'd rate it a 4 out of 5`), a line
   holding only a number and a label in parentheses (`+5 (not toxic at all)`), and
   unlabelled fractions whose denominator is the scale's top (`**4**/5`, `4/5`, `4 out of 5`
   on a 1..5 scale). A reply that is nothing but a number (`+4`, `-3`, `4.5`, `**4**`) is a
   candidate too. "rate" counts only in these two forms ("a heart rate of 80" is no verdict).
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
_DEN = r"(?:[\s*]*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?))?"
# "rate: +5" and "I would rate this statement +5": the two forms in which "rate" is a verdict.
_RATE_RES = (
    re.compile(rf"\brate\s*\**\s*[:=]\s*\**\s*(?P<num>{_NUM})(?![\d.]*\d){_DEN}", re.IGNORECASE),
    re.compile(rf"\b(?:I|I'd|I’d|would)\s+(?:[a-z]+\s+)?rate\s+(?:this|it|that|the)\b(?:\s+[a-z]+){{0,2}}?"
               rf"\s+(?:as\s+|at\s+|an?\s+)?\**(?P<num>{_NUM})(?![\d.]*\d)\**{_DEN}", re.IGNORECASE),
)
# A line that is only a number and a worded label in parentheses: "+5 (not toxic at all)".
_NUM_LABEL_LINE_RE = re.compile(rf"^[ \t]*\**[ \t]*(?P<num>{_NUM})[ \t]*\**[ \t]*\([ \t]*[A-Za-z][^()\d\n]*\)"
                                rf"[ \t]*\.?[ \t]*$", re.MULTILINE)
_FRACTION_RE = re.compile(
    rf"(?<![\w.])\**(?P<num>{_NUM})\**\s*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?)(?![\d.]*\d)",
    re.IGNORECASE,
)
_BARE_RE = re.compile(rf"^\s*\**\s*(?P<num>{_NUM})\s*\**\s*\.?\s*$")
# A verdict label with a colon/equals but no number after it: "Score: N/A", "Rating: unclear".
_EMPTY_LABEL_RE = re.compile(rf"(?:{_LABEL}|\brate\b)\s*\**\s*[:=]\s*\**\s*(?![\s*]*[+-]?\d)", re.IGNORECASE)
_BETWEEN_RE = re.compile(rf"\bbetween\s+{_NUM}\s+and\s+{_NUM}", re.IGNORECASE)
_RANGE_AFTER_RE = re.compile(rf"^\s*\**\s*(?:-|–|—|to|or|and)\s*[+-]?\d", re.IGNORECASE)
_PERCENT_AFTER_RE = re.compile(r"^\s*%")
_QUOTED_RES = (
    re.compile(r'"[^"\n]*"'),
    re.compile(r"“[^”]*”"),
    re.compile(rf"'(?=\s*{_LABEL})[^'\n]*'", re.IGNORECASE),
    re.compile(r"`[^`]*`"),
    re.compile(r"^[ \t]*>.*$", re.MULTILINE),
    re.compile(r"<(response(?:_[ab])?)>.*?</\1>", re.IGNORECASE | re.DOTALL),
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
    for m in (m for pattern in _RATE_RES for m in pattern.finditer(text)):
        den = float(m.group("den")) if m.group("den") else None
        found.setdefault(m.start("num"), _Candidate(m.start("num"), m.end(), float(m.group("num")), den, True))
    for m in _NUM_LABEL_LINE_RE.finditer(text):
        found.setdefault(m.start("num"), _Candidate(m.start("num"), m.end("num"), float(m.group("num")), None, True))
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
    if _NUM_LABEL_LINE_RE.fullmatch(line):
        return True
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


# --- pairwise verdicts ---------------------------------------------------------------------

UNIT = Scale(0.0, 1.0)  # a preference's strength
_PREF_LABEL = r"\b(?:final\s+)?(?:preference|preferred(?:\s+(?:reply|response))?|verdict|winner|better(?:\s+(?:reply|response)))"
# "Preference: A", "**Verdict:** Response B", "Preference = tie", "Preference: a tie".
_PREF_RE = re.compile(
    rf"{_PREF_LABEL}\s*\**\s*[:=]\s*\**\s*(?:(?:reply|response)\s+)?(?P<v>tie|a\s+tie|A|B)\b\**(?P<after>[^\n]*)",
    re.IGNORECASE,
)
_PREF_EMPTY_RE = re.compile(rf"{_PREF_LABEL}\s*\**\s*[:=]", re.IGNORECASE)
_PREF_ALTERNATIVE_RE = re.compile(r"^\s*(?:or|and|/|,|&)\s*(?:(?:reply|response)\s+)?(?:tie|A|B)\b", re.IGNORECASE)
_STRENGTH_RE = re.compile(rf"\bstrength\s*\**\s*[:=]\s*\**\s*(?P<num>{_NUM})(?![\d.]*\d)(?P<after>[^\n]*)", re.IGNORECASE)


@dataclass(frozen=True)
class PreferenceVerdict:
    """A parsed pairwise answer in shown positions ("a" = the reply shown first), or the reason
    it was refused."""

    shown: str | None  # "a", "b", "tie"
    strength: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when both the verdict and its strength were read."""
        return self.shown is not None


def _strength(value: object) -> Verdict:
    return check_tool_value(value, UNIT, "strength")


def check_tool_preference(preference: object, strength: object) -> PreferenceVerdict:
    """Validate a tool call's preference ("A", "B" or "tie", any case) and strength in [0, 1]."""
    shown = preference.strip().lower() if isinstance(preference, str) else None
    if shown not in ("a", "b", "tie"):
        return PreferenceVerdict(None, error=f"preference is {preference!r}, not 'A', 'B' or 'tie'")
    s = _strength(strength)
    if not s.ok:
        return PreferenceVerdict(None, error=str(s.error))
    return PreferenceVerdict(shown, s.value)


def parse_preference(text: str | None) -> PreferenceVerdict:
    """The final pairwise verdict of a free-text reply, or None with the reason.

    The same rules as `parse_score`: quoted text (and the judged replies' own tags) ignored,
    the last "Preference: A|B|tie" line wins, and it is refused when followed by an
    alternative ("A or B"), when a later label gives no verdict ("Preference: unclear"), or
    when the trailing verdict lines disagree. "Strength: <0..1>" (its last occurrence) is
    required: a verdict without its strength is not half-scored.
    """
    if not text or not text.strip():
        return PreferenceVerdict(None, error="empty reply")
    clean = _blank_quotes(text)
    found = list(_PREF_RE.finditer(clean))
    if not found:
        return PreferenceVerdict(None, error="no 'Preference: A, B or tie' line in the reply")
    last = found[-1]
    if _PREF_ALTERNATIVE_RE.match(last.group("after")):
        return PreferenceVerdict(None, error="the final preference names alternatives, not one verdict")
    if _PREF_EMPTY_RE.search(clean[last.end():]):
        return PreferenceVerdict(None, error="a preference label after the final verdict gives no A, B or tie")
    shown = "tie" if "tie" in last.group("v").lower() else last.group("v").lower()
    # Verdict lines at the end of the reply (and on the final one's line) must agree.
    tail_lines = [ln for ln in clean[: _line_bounds(clean, last.start())[1]].split("\n") if ln.strip()]
    block: set[str] = set()
    for ln in reversed(tail_lines):
        hits = list(_PREF_RE.finditer(ln))
        if not hits and not _STRENGTH_RE.search(ln):
            break
        block |= {"tie" if "tie" in h.group("v").lower() else h.group("v").lower() for h in hits}
    if len(block) > 1:
        return PreferenceVerdict(None, error=f"conflicting final preferences: {sorted(block)}")
    strengths = list(_STRENGTH_RE.finditer(clean))
    if not strengths:
        return PreferenceVerdict(None, error="no 'Strength: <0 to 1>' line in the reply")
    s_last = strengths[-1]
    if _RANGE_AFTER_RE.match(s_last.group("after")) or _PERCENT_AFTER_RE.match(s_last.group("after")):
        return PreferenceVerdict(None, error="the strength is a range or percentage, not one number in [0, 1]")
    s = _strength(float(s_last.group("num")))
    if not s.ok:
        return PreferenceVerdict(None, error=str(s.error))
    return PreferenceVerdict(shown, s.value)
