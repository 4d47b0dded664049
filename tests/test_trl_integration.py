"""rlaif judges as TRL reward functions: formats, None handling, metrics, a real GRPOTrainer run."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Sequence

import pytest

from rlaif.integrations.trl import messages_to_text, reward_function
from rlaif.judges.base import Judge, MemberScore, Sample, Scale, Score


class CountingJudge(Judge):
    """value = number of 'e' characters in the response; records every batch it sees."""

    name = "count_e"
    scale = Scale(0.0, 100.0)

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[Sample]] = []
        self.values: list[list[float | None]] = []
        self.fail_on = fail_on

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        self.calls.append(list(samples))
        out = [
            Score.failed("refused") if self.fail_on is not None and self.fail_on in s.response
            else Score(float(s.response.count("e")))
            for s in samples
        ]
        self.values.append([s.value for s in out])
        return out


class MemberJudge(Judge):
    """Ensemble-shaped scores: two members with fixed raw scores."""

    name = "hhh"
    scale = Scale(-1.0, 1.0)

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        out = []
        for i, _ in enumerate(samples):
            members = {"helpful": MemberScore(float(i), 0.0, 1.0),
                       "harmless": MemberScore(None, None, 1.0, "x") if i == 0 else MemberScore(10.0, 0.0, 1.0)}
            out.append(Score(0.5, members=members))
        return out


def test_reward_function_is_async_and_named():
    fn = reward_function(CountingJudge())
    assert inspect.iscoroutinefunction(fn)
    assert fn.__name__ == "count_e"
    assert reward_function(CountingJudge(), name="tox").__name__ == "tox"


def test_standard_text_format_scores_completion_with_prompt():
    judge = CountingJudge()
    fn = reward_function(judge)
    values = asyncio.run(fn(prompts=["Hi", "Hello"], completions=["eee", "no"], completion_ids=[[1], [2]]))
    assert values == [3.0, 0.0]
    assert [(s.prompt, s.response) for s in judge.calls[0]] == [("Hi", "eee"), ("Hello", "no")]


def test_conversational_format_becomes_hh_text():
    judge = CountingJudge()
    fn = reward_function(judge)
    prompts = [[{"role": "system", "content": "Be kind."},
                {"role": "user", "content": "You are dumb."}],
               [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]]
    completions = [[{"role": "assistant", "content": "I see, let me help."}],
                   [{"role": "assistant", "content": [{"type": "text", "text": "hello"}]}]]
    values = asyncio.run(fn(prompts, completions))
    assert values == [5.0, 1.0]  # "I see, let me help." has 5 e's; "hello" has 1
    assert judge.calls[0][0].prompt == "\n\nSystem: Be kind.\n\nHuman: You are dumb."
    assert judge.calls[0][0].response == "I see, let me help."
    assert judge.calls[0][1].prompt == "\n\nHuman: Hi there"
    assert judge.calls[0][1].response == "hello"


def test_messages_to_text_rejects_other_types():
    with pytest.raises(TypeError, match="messages"):
        messages_to_text(42, dialogue=True)  # type: ignore[arg-type]


def test_unscored_is_none_or_configured_value_and_logged():
    logged: list[tuple[str, float]] = []
    fn = reward_function(CountingJudge(fail_on="bad"))
    values = asyncio.run(fn(["p"] * 3, ["ee", "bad", "e"], log_metric=lambda k, v: logged.append((k, v))))
    assert values == [2.0, None, 1.0]  # None: TRL drops it instead of counting it as 0
    assert logged == [("count_e/unscored", 1.0)]
    fn0 = reward_function(CountingJudge(fail_on="bad"), missing=-1.0)
    assert asyncio.run(fn0(["p"] * 2, ["bad", "e"])) == [-1.0, 1.0]


def test_ensemble_member_means_logged():
    logged: dict[str, float] = {}
    fn = reward_function(MemberJudge())
    asyncio.run(fn(["a", "b", "c"], ["x", "y", "z"], log_metric=logged.__setitem__))
    # helpful raw = 0, 1, 2 -> mean 1; harmless missing on sample 0, then 10, 10 -> mean 10
    assert logged == {"hhh/unscored": 0.0, "hhh/helpful/mean": 1.0, "hhh/harmless/mean": 10.0}


def test_grpo_trainer_runs_with_rlaif_judge(tiny_models, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    judge = CountingJudge()
    fn = reward_function(judge)
    prompts = ["Human: How do I bake bread? Assistant:", "Human: Tell me a joke. Assistant:",
               "Human: You are stupid. Assistant:", "Human: What is the capital of France? Assistant:"]
    dataset = Dataset.from_dict({"prompt": prompts * 2})
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"), use_cpu=True, bf16=False, gradient_checkpointing=False,
        report_to="none", per_device_train_batch_size=4, num_generations=2,
        max_completion_length=8, max_steps=2, logging_steps=1, save_strategy="no",
        learning_rate=1e-3, seed=0, temperature=1.0,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    trainer = GRPOTrainer(model=model, reward_funcs=[fn], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()

    assert trainer.state.global_step == 2
    assert len(judge.calls) == 2 and all(len(c) == 4 for c in judge.calls)
    # The judge saw TRL's prompts and completions; the last batch's logged rewards are its values.
    assert {s.prompt for c in judge.calls for s in c} <= set(prompts)
    assert list(trainer._logs["completion"]) == [s.response for s in judge.calls[-1]]
    assert list(trainer._logs["rewards"]["count_e"]) == judge.values[-1]
    step_logs = [h for h in trainer.state.log_history if "rewards/count_e/mean" in h]
    assert len(step_logs) == 2
    for logged, values in zip(step_logs, judge.values):
        assert math.isclose(logged["rewards/count_e/mean"], sum(values) / len(values), rel_tol=1e-5)
        assert logged["count_e/unscored"] == 0.0
