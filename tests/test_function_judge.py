"""Function judge: import, batching, transform math, output checks, the profanity-check spec."""

from __future__ import annotations

import textwrap

import pytest

from rlaif.judges.base import JudgeError, Sample
from rlaif.judges.local.function import FunctionJudge
from rlaif.judges.registry import build_judge
from rlaif.judges.spec import FunctionSpec, load_spec

HELPER = textwrap.dedent(
    """
    import numpy as np
    import torch

    CALLS = []

    def length(texts, factor=1.0):
        CALLS.append(list(texts))
        return [len(t) * factor for t in texts]

    def as_numpy(texts):
        return np.array([[len(t)] for t in texts], dtype=np.float32)  # a column (N, 1)

    def as_torch(texts):
        return torch.tensor([float(len(t)) for t in texts], requires_grad=True)

    async def async_length(texts):
        return [len(t) for t in texts]

    def one_short(texts):
        return [1.0] * (len(texts) - 1)

    def nan_for_empty(texts):
        return [float("nan") if not t else 1.0 for t in texts]

    def boom(texts):
        raise RuntimeError("scorer crashed")

    NOT_CALLABLE = 3
    """
)


@pytest.fixture
def helper(tmp_path, monkeypatch):
    (tmp_path / "fx_scorers.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("fx_scorers", None)
    return importlib.import_module("fx_scorers")


def _judge(function: str, **fields) -> FunctionJudge:
    return FunctionJudge(FunctionSpec(function=f"fx_scorers:{function}", **{"scale": (0, 100), **fields}))


def test_transform_kwargs_and_batches(helper):
    judge = _judge("length", transform={"multiply": 0.5, "add": 1.0}, kwargs={"factor": 2.0},
                   batch_size=2)
    scores = judge.score([("p", "abc"), ("p", ""), ("p", "abcdef"), ("p", "a"), ("p", "ab")])
    # value = 0.5 * (2 * len) + 1 = len + 1
    assert [s.value for s in scores] == [4.0, 1.0, 7.0, 2.0, 3.0]
    assert [s.raw for s in scores] == ["6.0", "0.0", "12.0", "2.0", "4.0"]
    assert helper.CALLS == [["abc", ""], ["abcdef", "a"], ["ab"]]  # batch_size 2, in order


def test_prompt_response_input_joins_with_newline(helper):
    judge = _judge("length", input="prompt_response")
    assert judge.score([Sample("ab", "cde")])[0].value == 6.0  # "ab\ncde"
    assert helper.CALLS == [["ab\ncde"]]


@pytest.mark.parametrize("function", ["as_numpy", "as_torch", "async_length"])
def test_numpy_torch_and_async_outputs(helper, function):
    assert [s.value for s in _judge(function).score([("", "abcd"), ("", "x")])] == [4.0, 1.0]


def test_non_finite_value_fails_that_sample_only(helper):
    scores = _judge("nan_for_empty").score([("", "a"), ("", "")])
    assert scores[0].value == 1.0
    assert scores[1].value is None and "nan" in scores[1].error


def test_a_value_outside_the_declared_scale_is_unscored_naming_judge_value_and_scale(helper):
    judge = _judge("length", scale=(0, 3), transform={"multiply": 0.5, "add": 1}, name="short")
    ok, out = judge.score([("", "ab"), ("", "abcde")])  # 0.5 * 2 + 1 = 2 fits; 0.5 * 5 + 1 = 3.5 not
    assert ok.value == 2.0
    assert out.value is None and out.raw == "5.0"
    assert out.error == ("judge 'short': value 3.5 is outside its declared scale [0, 3]; raw output 5.0, "
                         "transform 0.5 * raw + 1; fix `transform:` or `scale:` in the judge spec so every "
                         "output lands on the scale")


def test_a_non_finite_transform_is_refused_naming_the_judge_and_the_field(helper, tmp_path):
    path = tmp_path / "nan-judge.yaml"
    path.write_text("type: function\nfunction: fx_scorers:length\nscale: [0, 1]\ntransform: {multiply: .nan}\n")
    with pytest.raises(JudgeError, match=r"nan-judge\.yaml: invalid judge spec\n  function\.transform\.multiply: "
                                         r"Input should be a finite number"):
        load_spec(path)
    spec = {"type": "function", "name": "mine", "function": "fx_scorers:length", "scale": [0, 1],
            "transform": {"add": float("inf")}}
    with pytest.raises(JudgeError, match=r"judge 'mine': invalid judge spec\n  function\.transform\.add"):
        build_judge(spec)


def test_wrong_length_is_a_judge_error_keeping_earlier_batches(helper):
    judge = _judge("one_short", batch_size=2)
    with pytest.raises(JudgeError, match=r"shape \(1,\) for 2 texts.*one number per input") as err:
        judge.score([("", "a"), ("", "b")])
    assert err.value.partial == [None, None]


def test_scorer_exception_becomes_judge_error(helper):
    with pytest.raises(JudgeError, match="RuntimeError: scorer crashed"):
        _judge("boom").score([("", "a")])


@pytest.mark.parametrize(
    "function, message",
    [
        ("fx_no_such_module:f", r"cannot import module 'fx_no_such_module'"),
        ("fx_scorers:nope", r"has no attribute 'nope'; available: .*length"),
        ("fx_scorers:NOT_CALLABLE", r"is a int, not a callable"),
    ],
)
def test_import_errors_are_clear(helper, function, message):
    with pytest.raises(JudgeError, match=message):
        FunctionJudge(FunctionSpec(function=function, scale=(0, 1)))


def test_scale_is_required(helper):
    with pytest.raises(JudgeError, match=r"add `scale: \[low, high\]`"):
        FunctionJudge(FunctionSpec(function="fx_scorers:length"))


def test_profanity_check_spec_rewards_clean_text():
    judge = build_judge("profanity-check")
    clean, profane = judge.score([("", "Thank you, have a lovely day."), ("", "fuck you, idiot")])
    assert (judge.scale.low, judge.scale.high) == (0.0, 1.0)
    assert 0.5 < clean.value <= 1.0 and 0.0 <= profane.value < 0.1
    # value = 1 - P(profane): the raw is the library's own probability
    assert clean.value == pytest.approx(1 - float(clean.raw))
