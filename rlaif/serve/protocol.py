"""The wire formats: OpenRLHF's remote reward protocol, rlaif's native and pairwise endpoints.

OpenRLHF (`POST /get_reward`, what `openrlhf.utils.agent.SingleTurnAgentExecutor` and the
older `remote_rm_utils.request_api_wrapper` send): `{"query": [...], "prompts": [...],
"labels": [...]}`, one entry per sample, where a query is the prompt and the response
decoded together (`tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)`).
The response is `query[len(prompt):]` when the query starts with its prompt, with trailing
end-of-sequence markers (`<|im_end|>`, `</s>`, ...) cut; a query that does not start with its
prompt (OpenRLHF cut the prompt from the left to fit max_len, or the tokenizer does not
round-trip it) is unscored with that reason, never guessed. The answer is what
`openrlhf.cli.serve_rm` returns: `{"rewards": [...], "scores": [...], "extra_logs": {...}}`,
the same list twice (OpenRLHF reads `rewards` as the reward and `scores` for dynamic
filtering), and `extra_logs` holds one number per sample for each key, which OpenRLHF logs:
`rlaif_unscored` (1.0 for a filled sample).

Native (`POST /v1/score`): `{"samples": [{"prompt", "response"[, "meta"]}]}` ->
`{"judge", "scale", "scores": [{value, error, cached, requests, cost_usd, ...}], "unscored"}`.
Pairwise (`POST /v1/compare`): `{"pairs": [{"prompt", "a", "b"}]}` ->
`{"judge", "preferences": [Preference.to_dict()], "unscored"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlaif.judges.base import Sample, Score
from rlaif.judges.pairwise import Pair, Preference


class RequestError(ValueError):
    """A request body that does not follow the protocol; the message says what to send."""


class UnscoredError(Exception):
    """OpenRLHF samples were unscored and the fill policy is "error"; `reasons` by index."""

    def __init__(self, reasons: dict[int, str]) -> None:
        super().__init__(f"{len(reasons)} sample(s) could not be scored")
        self.reasons = reasons


def _string_list(body: dict[str, Any], key: str, where: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{where}: {key!r} must be a list of strings, got {type(value).__name__}")
    return value


def _object(body: Any, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(f"{where}: the body must be a JSON object, got {type(body).__name__}")
    return body


def strip_eos(text: str, markers: Sequence[str]) -> str:
    """`text` without end-of-sequence markers (and the whitespace between them) at its end."""
    changed = True
    while changed:
        changed = False
        for marker in markers:
            if marker and text.rstrip().endswith(marker):
                text = text.rstrip()[: -len(marker)]
                changed = True
    return text


def split_query(query: str, prompt: str, eos_markers: Sequence[str]) -> str | None:
    """The response inside an OpenRLHF query (prompt + response); None when it does not start with `prompt`."""
    if not query.startswith(prompt):
        return None
    return strip_eos(query[len(prompt):], eos_markers)


def parse_openrlhf(body: Any, eos_markers: Sequence[str]) -> tuple[list[Sample], dict[int, str]]:
    """Samples from an OpenRLHF body, and the reason for each query that could not be split.

    A query that cannot be split still gets a placeholder Sample (never judged) so indices line up.
    """
    where = "POST /get_reward (OpenRLHF)"
    body = _object(body, where)
    queries = _string_list(body, "query", where)
    if "prompts" not in body:
        raise RequestError(f"{where}: no 'prompts'; rlaif needs each query's prompt to find the response "
                           "(OpenRLHF >= 0.5 sends them)")
    prompts = _string_list(body, "prompts", where)
    if len(prompts) != len(queries):
        raise RequestError(f"{where}: {len(queries)} queries but {len(prompts)} prompts; send one prompt per query")
    labels = body.get("labels")
    labels = labels if isinstance(labels, list) and len(labels) == len(queries) else [None] * len(queries)
    samples, unsplit = [], {}
    for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels)):
        response = split_query(query, prompt, eos_markers)
        if response is None:
            unsplit[i] = ("query does not start with its prompt (OpenRLHF truncated the prompt to fit "
                          "max_len, or the tokenizer does not decode it back unchanged); not judged")
            response = ""
        meta = {} if label is None else {"label": label}
        samples.append(Sample(prompt, response, meta))
    return samples, unsplit


def openrlhf_answer(scores: Sequence[Score], fill: float | str) -> tuple[dict[str, Any], int]:
    """serve_rm's answer shape, and how many samples were filled; UnscoredError when fill is "error"."""
    missing = {i: s.error or "unscored" for i, s in enumerate(scores) if s.value is None}
    if missing and fill == "error":
        raise UnscoredError(missing)
    rewards = [float(s.value) if s.value is not None else float(fill) for s in scores]
    unscored = [1.0 if s.value is None else 0.0 for s in scores]
    return {"rewards": rewards, "scores": rewards, "extra_logs": {"rlaif_unscored": unscored}}, len(missing)


def _text_items(body: Any, where: str, key: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """The objects of `body[key]`, each with string `fields` (a missing `prompt` is "")."""
    items = _object(body, where).get(key)
    shape = "{" + ", ".join(fields) + "}"
    if not isinstance(items, list):
        raise RequestError(f"{where}: '{key}' must be a list of {shape} objects")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("prompt", ""), str) \
                or not all(isinstance(item.get(f), str) for f in fields if f != "prompt"):
            want = ", ".join(f"'{f}': str" for f in fields)
            raise RequestError(f"{where}: {key}[{i}] must be {{{want}}}, got {item!r:.80}")
    return items


def parse_native(body: Any) -> list[Sample]:
    """Samples from `{"samples": [{"prompt", "response"[, "meta"]}]}`."""
    where = "POST /v1/score"
    out = []
    for i, item in enumerate(_text_items(body, where, "samples", ("prompt", "response"))):
        meta = item.get("meta") or {}
        if not isinstance(meta, dict):
            raise RequestError(f"{where}: samples[{i}].meta must be an object")
        out.append(Sample(item.get("prompt", ""), item["response"], meta))
    return out


def score_json(score: Score) -> dict[str, Any]:
    """One native score: value or error, whether it came from the cache, what it cost."""
    usage = score.usage
    out: dict[str, Any] = {
        "value": score.value, "error": score.error, "rationale": score.rationale,
        "cached": bool(score.details.get("cached", False)),
        "requests": usage.requests if usage else 0, "cost_usd": usage.cost_usd if usage else 0.0,
        "input_tokens": usage.input_tokens if usage else 0, "output_tokens": usage.output_tokens if usage else 0,
    }
    if score.criteria is not None:
        out["criteria"] = dict(score.criteria)
    if score.members is not None:
        out["members"] = {name: m.to_dict() for name, m in score.members.items()}
    return out


def parse_pairs(body: Any) -> list[Pair]:
    """Pairs from `{"pairs": [{"prompt", "a", "b"}]}`."""
    items = _text_items(body, "POST /v1/compare", "pairs", ("prompt", "a", "b"))
    return [Pair(item.get("prompt", ""), item["a"], item["b"]) for item in items]


def preference_json(pref: Preference) -> dict[str, Any]:
    """One pairwise verdict as `Preference.to_dict()` gives it."""
    return pref.to_dict()
