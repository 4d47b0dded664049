"""Function judge: any importable Python callable over a batch of texts.

    type: function
    function: profanity_check:predict_prob   # 'package.module:callable'
    input: response                          # or prompt_response: prompt + "\\n" + response
    transform: {multiply: -1, add: 1}        # value = multiply * raw + add
    scale: [0, 1]                            # required: the range after the transform
    kwargs: {}                               # extra keyword arguments for every call

The callable takes `list[str]` (plus `kwargs`) and returns one number per text, as a list,
a numpy array or a torch tensor. Plain functions run in a worker thread so the event
loop stays free; `async def` functions are awaited. A non-finite number (NaN, inf) gives
that sample `Score.failed`, and so does a value that the transform puts outside the
declared `scale` (the error names the judge, the value, the raw output and the scale; fix
`transform:` or `scale:`), as an LLM judge refuses an out-of-scale reply: per sample, so one
odd text does not stop a batch, and never a silently used value. A result of the wrong
length is a bug in the function and raises `JudgeError` (with the earlier batches' scores
in `.partial`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score
from rlaif.judges.spec import FunctionSpec


def import_callable(ref: str, where: str = "function") -> Callable[..., Any]:
    """Import 'package.module:attr' (attr may be dotted) and check that it is callable."""
    module_name, _, attr_path = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise JudgeError(
            f"{where}: cannot import module {module_name!r} for {ref!r} ({exc}); install the "
            "package that provides it, or fix the module path (it must be importable from "
            "the current Python environment)"
        ) from exc
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            public = sorted(a for a in dir(obj) if not a.startswith("_"))[:20]
            raise JudgeError(
                f"{where}: {ref!r}: {type(obj).__name__} {getattr(obj, '__name__', obj)!r} has no "
                f"attribute {part!r}; available: {', '.join(public) or '(none)'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise JudgeError(f"{where}: {ref!r} is a {type(obj).__name__}, not a callable")
    return obj


def _to_floats(out: Any, expected: int, where: str) -> list[float]:
    """Turn a list / numpy array / torch tensor of N numbers into N Python floats."""
    if hasattr(out, "detach"):  # torch tensor, possibly on a GPU or requiring grad
        out = out.detach().float().cpu().numpy()
    import numpy as np

    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise JudgeError(
            f"{where}: returned {type(out).__name__}, which is not a sequence of numbers ({exc}); "
            "it must return one number per input text (list, numpy array or torch tensor)"
        ) from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # a column vector (N, 1) is one number per text too
    if arr.ndim != 1 or arr.shape[0] != expected:
        raise JudgeError(
            f"{where}: returned shape {tuple(arr.shape)} for {expected} texts; it must return "
            f"exactly one number per input text (shape ({expected},))"
        )
    return arr.tolist()


class FunctionJudge(Judge):
    """Scores texts with a user callable `module:function`, then `value = multiply*raw + add`."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.name = spec.name or spec.function
        self._where = f"function judge {self.name!r} ({spec.function})"
        if spec.scale is None:
            raise JudgeError(
                f"{self._where}: a function judge must declare its range after the transform; "
                "add `scale: [low, high]` to the spec (e.g. `scale: [0, 1]` for a probability)"
            )
        self.scale = Scale(*spec.scale)
        self.fn = import_callable(spec.function, where=self._where)
        self._is_async = inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(
            getattr(self.fn, "__call__", None)
        )

    def _texts(self, samples: Sequence[Sample]) -> list[str]:
        if self.spec.input == "prompt_response":
            return [f"{s.prompt}\n{s.response}" for s in samples]
        return [s.response for s in samples]

    async def _call(self, texts: list[str]) -> Any:
        kwargs = self.spec.kwargs
        if self._is_async:
            return await self.fn(texts, **kwargs)
        out = await asyncio.to_thread(self.fn, texts, **kwargs)
        if inspect.isawaitable(out):  # a sync wrapper that hands back a coroutine
            out = await out
        return out

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Call the function batch by batch; scores come back in input order."""
        texts = self._texts(samples)
        scores: list[Score] = []
        bs = self.spec.batch_size
        for start in range(0, len(texts), bs):
            chunk = texts[start:start + bs]
            partial = scores + [None] * (len(texts) - len(scores))
            try:
                out = await self._call(chunk)
            except JudgeError as exc:
                raise JudgeError(f"{self._where}: {exc}", partial=partial) from exc
            except Exception as exc:
                raise JudgeError(
                    f"{self._where} raised {type(exc).__name__}: {exc} "
                    f"(on texts {start}..{start + len(chunk) - 1} of this batch)",
                    partial=partial,
                ) from exc
            try:
                raws = _to_floats(out, len(chunk), self._where)
            except JudgeError as exc:
                raise JudgeError(str(exc), partial=partial) from None
            scores += [self._to_score(raw) for raw in raws]
        return scores

    def _to_score(self, raw: float) -> Score:
        """The Score of one output: multiply * raw + add, or why it is refused (module doc)."""
        if not math.isfinite(raw):
            return Score.failed(f"{self.spec.function} returned {raw}", raw=repr(raw))
        mul, add = self.spec.transform.multiply, self.spec.transform.add
        value = mul * raw + add
        fix = (f"raw output {raw!r}, transform {mul:g} * raw + {add:g}; fix `transform:` or "
               "`scale:` in the judge spec so every output lands on the scale")
        refusal = self.scale.refusal(value, self.name, fix)
        return Score(value=value, raw=repr(raw)) if refusal is None else Score.failed(refusal, raw=repr(raw))
