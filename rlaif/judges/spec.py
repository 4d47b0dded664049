"""Judge specs: YAML files validated by pydantic, discriminated by `type`.

    type: classifier | embedding | relevance | function | llm | ensemble | pairwise

`load_spec("roberta-hate")` resolves a built-in name or a path; `parse_spec(dict)` validates
a mapping. Unknown keys fail loudly (`extra="forbid"`), naming the file and the key. Making
a Judge from a spec is `rlaif.judges.registry.build_judge`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from rlaif.io import read_yaml as read_yaml_file
from rlaif.judges.base import JudgeError
# The shared base and the encoder judges' specs live in their own modules; importable from here.
from rlaif.judges.spec_base import HEAD_SUFFIXES, RUNTIME_FIELDS, _SpecBase, _Strict  # noqa: F401
from rlaif.judges.spec_encoder import EmbeddingSpec, RelevanceSpec, _EncoderSpec
from rlaif.resources import looks_like_path, resolve

# Current Claude models (Nov 2026). Bedrock's `us.` prefix is the cross-region inference
# profile that on-demand calls to recent models require; use `eu.`/`global.` elsewhere.
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-6", "bedrock": "us.anthropic.claude-sonnet-4-6"}
# The API a provider uses when the spec names none: Bedrock has no `messages`.
DEFAULT_APIS = {"anthropic": "messages", "bedrock": "invoke_model"}


class ClassifierSpec(_SpecBase):
    """Any Hugging Face sequence classifier or reward model (hub id or local folder)."""

    type: Literal["classifier"] = "classifier"
    model: str
    label: str | int | None = Field(
        default=None,
        description="label name (checked against id2label) or index; None = the single logit "
        "of a 1-output reward model",
    )
    output: Literal["logit", "prob", "logprob"] = "logit"
    input: Literal["response", "prompt_response"] = "response"
    max_length: int = Field(default=512, gt=0)
    batch_size: int = Field(default=32, gt=0)
    device: str = "auto"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    revision: str | None = None


class Transform(_Strict):
    """value = multiply * raw + add: maps a function's output onto the declared scale."""

    multiply: float = Field(default=1.0, allow_inf_nan=False)
    add: float = Field(default=0.0, allow_inf_nan=False)


class FunctionSpec(_SpecBase):
    """Any importable callable `module:function` taking a list of texts, returning numbers."""

    type: Literal["function"] = "function"
    function: str = Field(description="'package.module:callable' over a list[str]")
    input: Literal["response", "prompt_response"] = "response"
    batch_size: int = Field(default=256, gt=0)
    transform: Transform = Transform()
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("function")
    @classmethod
    def _check_function(cls, v: str) -> str:
        mod, sep, attr = v.partition(":")
        if not sep or not mod or not attr:
            raise ValueError(
                f"function must look like 'package.module:callable', got {v!r}"
            )
        return v


class Price(_Strict):
    """USD per million tokens, used to estimate a run's cost."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class Budget(_Strict):
    """Stop cleanly (keeping every score already paid for) past either limit."""

    max_usd: float | None = Field(default=None, gt=0)
    max_requests: int | None = Field(default=None, gt=0)


class LLMSpec(_SpecBase):
    """Claude scoring with a prompt template, via the Anthropic API or Amazon Bedrock.

    `model` and `api` default by provider (DEFAULT_MODELS, DEFAULT_APIS): a minimal Bedrock
    spec is `type: llm, provider: bedrock, prompt: toxicity`."""

    type: Literal["llm"] = "llm"
    provider: Literal["anthropic", "bedrock"]
    model: str = Field(default="", description="default: DEFAULT_MODELS[provider]")
    prompt: str = Field(description="a template in prompts/ (name or path)")
    api: Literal["messages", "invoke_model", "converse"] = Field(
        default="messages",
        description="anthropic: messages; bedrock: invoke_model (Anthropic body, the default) or converse",
    )
    criteria: list[str] | None = Field(
        default=None, description="score several criteria in one request (named sub-scores)"
    )
    structured: bool = Field(default=True, description="ask for the score through tool use")
    temperature: float = Field(default=0.0, ge=0, le=1)
    max_tokens: int = Field(default=512, gt=0)
    max_input_chars: int = Field(
        default=60_000, gt=0, description="longest prompt + response sent (about 15k tokens): "
        "a longer sample is left unscored with the reason, never sent (a runaway 5 MB reply "
        "would be a million-token request)")
    max_concurrency: int = Field(default=8, gt=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    region: str | None = None
    base_url: str | None = None
    endpoint_url: str | None = None
    price: Price = Price()
    budget: Budget | None = None

    def _fingerprint_payload(self) -> dict[str, Any]:
        # The template's text decides the scores, not its name: editing prompts/x.yaml
        # must not keep serving scores cached under the old wording.
        payload = super()._fingerprint_payload()
        try:
            payload["prompt_text"] = resolve("prompts", self.prompt).read_text()
        except FileNotFoundError:
            pass  # building the judge reports the missing template with the fix
        return payload

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        # Defaults follow the provider: an unset (or null) api / model takes the provider's.
        if isinstance(data, dict) and data.get("provider") in DEFAULT_APIS:
            data = dict(data)
            if data.get("api") is None:
                data["api"] = DEFAULT_APIS[data["provider"]]
            if not data.get("model"):
                data["model"] = DEFAULT_MODELS[data["provider"]]
        return data

    @model_validator(mode="after")
    def _check_api(self) -> LLMSpec:
        allowed = {"anthropic": {"messages"}, "bedrock": {"invoke_model", "converse"}}[self.provider]
        if self.api not in allowed:
            default = DEFAULT_APIS[self.provider]
            raise ValueError(
                f"api {self.api!r} does not exist for provider {self.provider!r}; "
                f"use one of {sorted(allowed)} (e.g. api: {default})"
            )
        return self


class PairwiseSpec(LLMSpec):
    """Claude compares two responses to one prompt (`rlaif.judges.llm.pairwise`).

    Everything an `llm` spec has (provider, model, api, price, budget, cache, retries,
    concurrency), a pairwise template, and the position-bias control:
    orders: both (ask (a, b) and (b, a), the default) | single (ask (a, b) only);
    disagreement: tie (two orders that disagree give a tie, strength 0) | unscored.
    The combining rules are in `rlaif.judges.pairwise`."""

    type: Literal["pairwise"] = "pairwise"  # type: ignore[assignment]
    prompt: str = Field(default="pairwise-harmlessness", description="a pairwise template in prompts/")
    orders: Literal["both", "single"] = "both"
    disagreement: Literal["tie", "unscored"] = "tie"

    def _fingerprint_payload(self) -> dict[str, Any]:
        # The cache holds one answer per asking; how many orders are asked and how two
        # answers combine do not change an answer, so switching them reuses what was paid.
        payload = super()._fingerprint_payload()
        for name in ("orders", "disagreement"):
            payload.pop(name, None)
        return payload

    @model_validator(mode="after")
    def _no_criteria(self) -> PairwiseSpec:
        if self.criteria is not None or self.scale is not None:
            raise ValueError("a pairwise judge has no criteria or scale (it returns A, B or tie with a "
                             "strength in [0, 1]); drop `criteria:` / `scale:`")
        return self


class Member(_Strict):
    """One ensemble member: a judge (built-in name, path, or inline spec) and its weight.

    In an ensemble loaded from a file, a relative path (and an inline spec's `head:` or
    encoder folder) is relative to that file's folder, as a `head:` is to its spec's
    (`member_ref`); in a spec built from a dict, relative to the working directory."""

    judge: Union[str, "JudgeSpec"]
    weight: float = Field(default=1.0, ge=0)
    criterion: str | None = Field(
        default=None, description="take this named sub-score of a multi-criteria judge"
    )

    def judge_key(self) -> str:
        """Identity of this member's judge: the ref string, or the inline spec's JSON.

        Members with the same key share one judge (one call per batch)."""
        if isinstance(self.judge, str):
            return self.judge
        return "inline:" + self.judge.model_dump_json()


class EnsembleSpec(_SpecBase):
    """A weighted combination of judges."""

    type: Literal["ensemble"] = "ensemble"
    members: list[Member] = Field(min_length=1)
    normalize: Literal["range", "zscore", "none"] = "range"
    aggregate: Literal["weighted_mean", "min", "mean_minus_std"] = "weighted_mean"
    std_coef: float = Field(default=1.0, ge=0, description="k in mean - k*std")
    on_missing: Literal["skip", "renormalize", "fail"] = "renormalize"

    def _fingerprint_payload(self) -> dict[str, Any]:
        # Members named by reference hash by what the referenced spec says today.
        payload = super()._fingerprint_payload()
        payload["members"] = [
            {
                "judge": (load_spec(m.judge) if isinstance(m.judge, str) else m.judge).fingerprint(),
                "weight": m.weight,
                "criterion": m.criterion,
            }
            for m in self.members
        ]
        return payload

    @model_validator(mode="after")
    def _check_weights(self) -> EnsembleSpec:
        if sum(m.weight for m in self.members) <= 0:
            raise ValueError("ensemble weights sum to 0; give at least one member a weight > 0")
        return self


JudgeSpec = Annotated[
    Union[ClassifierSpec, EmbeddingSpec, RelevanceSpec, FunctionSpec, LLMSpec, EnsembleSpec],
    Field(discriminator="type"),
]
Member.model_rebuild()
AnySpec = Union[ClassifierSpec, EmbeddingSpec, RelevanceSpec, FunctionSpec, LLMSpec, EnsembleSpec]

@functools.cache
def _adapter() -> Any:
    """The validator of any judge spec (built once, on first use)."""
    from pydantic import TypeAdapter

    return TypeAdapter(JudgeSpec)


def parse_spec(data: dict[str, Any], source: str = "<dict>") -> AnySpec | PairwiseSpec:
    """Validate a spec dict; errors name the source and every offending field.

    `type: pairwise` gives a PairwiseSpec (for `registry.load_pairwise_judge`); it is not a
    pointwise judge, so it cannot be an ensemble member."""
    if not isinstance(data, dict):
        raise JudgeError(f"{source}: a judge spec must be a mapping, got {type(data).__name__}")
    if source == "<dict>" and data.get("name"):
        source = f"judge {data['name']!r}"
    if "type" not in data:
        raise JudgeError(
            f"{source}: missing field 'type'; set it to one of classifier, embedding, relevance, "
            "function, llm, ensemble, pairwise"
        )
    try:
        if data["type"] == "pairwise":
            return PairwiseSpec.model_validate(data)
        return _adapter().validate_python(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {loc or '(top)'}: {err['msg']}")
        raise JudgeError(f"{source}: invalid judge spec\n" + "\n".join(lines)) from None


def read_yaml(kind: str, ref: str | Path) -> tuple[Path, Any]:
    """Resolve a built-in name of `kind` ("judges", "prompts") or a path, and parse its YAML (not
    UTF-8, not YAML, or a key given twice: JudgeError naming the file, and both lines)."""
    path = resolve(kind, ref)
    try:
        return path, read_yaml_file(path, what="judge spec" if kind == "judges" else "prompt template")
    except ValueError as exc:
        raise JudgeError(str(exc)) from None


def load_spec(ref: str | Path) -> AnySpec | PairwiseSpec:
    """Load a judge spec from a built-in name (`roberta-hate`) or a YAML path.

    Relative paths inside the file are taken relative to the file's folder, once, here: an
    encoder folder and a `head:` file, and an ensemble's member judges (`member_ref`)."""
    path, data = read_yaml("judges", ref)
    spec = _relative_to(parse_spec(data, source=str(path)), path.parent, str(path))
    if not spec.name:
        spec = spec.model_copy(update={"name": path.stem})
    return spec


def _relative_to(spec: Any, folder: Path, source: str) -> Any:
    """`spec` with its relative paths taken relative to `folder` (see `load_spec`)."""
    if isinstance(spec, _EncoderSpec):
        return spec.relative_to(folder)
    if not isinstance(spec, EnsembleSpec):
        return spec
    members = [
        m.model_copy(update={"judge": member_ref(m.judge, folder, f"{source}: member {i}")
                             if isinstance(m.judge, str) else _relative_to(m.judge, folder, source)})
        for i, m in enumerate(spec.members)
    ]
    return spec.model_copy(update={"members": members})


def member_ref(ref: str, folder: Path, where: str) -> str:
    """An ensemble member's judge reference, resolved once: a file next to the ensemble file
    first, else (as before that rule) one relative to the working directory, as an absolute
    path; an absolute path or a built-in name stays as it is."""
    given = Path(ref).expanduser()
    if given.is_absolute():
        return ref
    beside, in_cwd = folder / given, Path.cwd() / given
    if beside.is_file():
        return str(beside.resolve())
    if in_cwd.is_file():
        logging.getLogger(__name__).warning(
            "%s: judge %r is not next to the ensemble file (%s) and was taken from the working "
            "directory (%s); member paths are relative to the ensemble file's folder, so move "
            "it there or give an absolute path", where, ref, beside, in_cwd)
        return str(in_cwd.resolve())
    if looks_like_path(ref):
        raise FileNotFoundError(
            f"{where}: judge file {ref!r} does not exist next to the ensemble file ({beside}) nor in "
            f"the working directory ({in_cwd}); member paths are relative to the ensemble file's "
            "folder: fix the path, or use a built-in judge by its bare name")
    return ref  # a built-in name


