"""PPOTrainer on the tiny GPT-2 and T5: one step end to end, unscored policies, reward
post-processing, gradient accumulation, the LR schedule, the train loop and `rlaif train`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from ppo_helpers import PROMPTS, LetterJudge, e_share, make_config, one_thread  # noqa: F401
from transformers import AutoTokenizer

from rlaif.cli import main
from rlaif.data.prompts import PromptStream, load_prompt_split
from rlaif.judges.base import JudgeError, Score, Usage
from rlaif.runs.folder import RunFolder
from rlaif.ppo.metrics import METRIC_KEYS
from rlaif.runs.metrics_log import read_metrics
from rlaif.ppo.rollout import policy_pass, reference_pass
from rlaif.ppo.trainer import PPOTrainer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
pytestmark = pytest.mark.usefixtures("one_thread")


def _snapshot(module: torch.nn.Module, trainable: bool) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad == trainable}


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_one_step_trains_and_logs_every_metric(tiny_models, tmp_path, arch):
    config = make_config(tiny_models[arch], tmp_path / "run")
    judge = LetterJudge(members=True)
    trainer = PPOTrainer.build(config, judge=judge, prompts=PROMPTS)
    before, frozen = _snapshot(trainer.policy, True), _snapshot(trainer.policy, False)

    m = trainer.step(PROMPTS)

    for key in METRIC_KEYS:
        assert key in m and math.isfinite(m[key]), (key, m.get(key))
    # The first rollout comes from the untouched policy, so it equals the reference: exactly
    # when both sides are forward passes (t5), to float rounding when the policy side comes
    # from generation's own hidden states (gpt2: ppo.rollout_logprobs auto -> generate).
    assert trainer.capture_states == (arch == "gpt2")
    tol = 1e-5 if trainer.capture_states else 0.0
    assert abs(m["objective/kl"]) <= tol and abs(m["objective/non_score_reward"]) <= tol
    # Reward metrics are the judge's own numbers, worked out again here.
    (samples, scores), = judge.calls
    assert [s.prompt for s in samples] == PROMPTS
    values = [s.value for s in scores]
    assert values == e_share([s.response for s in samples])
    mean = sum(values) / 4
    assert m["reward/mean"] == pytest.approx(mean)
    assert m["reward/std"] == pytest.approx((sum((v - mean) ** 2 for v in values) / 4) ** 0.5)
    assert m["reward/a/mean"] == pytest.approx(mean) and m["reward/b/mean"] == pytest.approx(1 - mean)
    assert (m["reward/scored"], m["reward/unscored"], m["batch/size"], m["step"]) == (4, 0, 4, 1)
    assert (m["judge/requests"], m["judge/cost_usd"]) == (0, 0.0)  # an offline judge costs nothing
    assert 4 <= m["response/length"] <= 6  # min_new_tokens 4, max_new_tokens 6
    assert m["ppo/lr"] == pytest.approx(1e-3)
    # Every trainable tensor moved (LM and value head); the frozen reference did not.
    after = _snapshot(trainer.policy, True)
    assert all(not torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(t, p) for t, p in zip(frozen.values(), _snapshot(trainer.policy, False).values()))
    # metrics.jsonl holds exactly this step.
    assert read_metrics(tmp_path / "run") == [json.loads(json.dumps(m))]


class PaidLetterJudge(LetterJudge):
    """LetterJudge whose `usage()` bills 1 request and $0.0025 per sample, as an API judge's does."""

    def __init__(self) -> None:
        super().__init__()
        self.spent = Usage()

    async def ascore(self, samples):
        scores = await super().ascore(samples)
        self.spent = self.spent + Usage(requests=len(samples), cost_usd=0.0025 * len(samples))
        return scores

    def usage(self) -> Usage:
        return self.spent


def test_each_step_logs_the_judges_requests_and_cost(tiny_models, tmp_path):
    """judge/requests and judge/cost_usd are the usage() delta over the step, not the total."""
    config = make_config(tiny_models["gpt2"], tmp_path / "run")
    judge = PaidLetterJudge()
    judge.spent = Usage(requests=7, cost_usd=1.0)  # spent before this run: counted in no step
    trainer = PPOTrainer.build(config, judge=judge, prompts=PROMPTS)
    trainer.step(PROMPTS)
    trainer.step(PROMPTS[:2] * 2)
    rows = read_metrics(tmp_path / "run")
    assert [r["judge/requests"] for r in rows] == [4, 4]
    assert [r["judge/cost_usd"] for r in rows] == pytest.approx([0.01, 0.01], abs=1e-12)


def test_lora_step_trains_adapters_and_value_head_only(tiny_models, tmp_path):
    config = make_config(tiny_models["gpt2"], tmp_path / "run", "model.lora={r: 4, alpha: 8}")
    trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
    assert trainer.policy.uses_lora and trainer.policy.ref_model is None  # no second copy
    before, frozen = _snapshot(trainer.policy, True), _snapshot(trainer.policy, False)
    assert all("lora_" in n or "value_head" in n for n in before)
    trainer.step(PROMPTS)
    after = _snapshot(trainer.policy, True)
    assert any(not torch.equal(before[n], after[n]) for n in before if "lora_B" in n)
    assert not torch.equal(before["value_head.weight"], after["value_head.weight"])
    assert all(torch.equal(t, p) for t, p in zip(frozen.values(), _snapshot(trainer.policy, False).values()))


def test_unscored_samples_are_skipped_and_counted(tiny_models, tmp_path):
    judge = LetterJudge(fail_every=2)  # batch positions 1 and 3 fail
    trainer = PPOTrainer.build(make_config(tiny_models["gpt2"], tmp_path / "run"), judge=judge,
                         prompts=PROMPTS)
    before = _snapshot(trainer.policy, True)
    m = trainer.step(PROMPTS)
    (_, scores), = judge.calls
    assert [s.ok for s in scores] == [True, False, True, False]
    assert (m["reward/scored"], m["reward/unscored"]) == (2, 2)
    assert m["reward/mean"] == pytest.approx((scores[0].value + scores[2].value) / 2)
    assert math.isfinite(m["ppo/loss/total"])
    assert any(not torch.equal(before[n], p) for n, p in _snapshot(trainer.policy, True).items())


def test_a_batch_with_nothing_scored_changes_nothing(tiny_models, tmp_path):
    trainer = PPOTrainer.build(make_config(tiny_models["gpt2"], tmp_path / "run"),
                         judge=LetterJudge(fail_all=True), prompts=PROMPTS)
    before = _snapshot(trainer.policy, True)
    m = trainer.step(PROMPTS)
    assert (m["reward/scored"], m["reward/unscored"]) == (0, 4)
    # Nothing was measured, so the metrics say so (NaN, null in the file), never a made-up 0.
    assert math.isnan(m["reward/mean"]) and math.isnan(m["ppo/loss/total"])
    assert read_metrics(tmp_path / "run")[0]["reward/mean"] is None
    assert all(torch.equal(before[n], p) for n, p in _snapshot(trainer.policy, True).items())


def test_unscored_fail_policy_raises_naming_the_sample_and_reason(tiny_models, tmp_path):
    config = make_config(tiny_models["gpt2"], tmp_path / "run", "judge.on_unscored=fail")
    trainer = PPOTrainer.build(config, judge=LetterJudge(fail_every=2), prompts=PROMPTS)
    with pytest.raises(JudgeError, match=r"could not score sample 1 of the batch \(prompt "
                                         r"'Human: What is the capital.*scripted failure at batch "
                                         r"position 1\. judge.on_unscored is 'fail'"):
        trainer.step(PROMPTS)


@pytest.mark.parametrize("overrides, processed, processed_mean", [
    # scores 1 and 3 (+ one unscored): clip at 2 -> [1, 2]; the unscored sample gets 0, masked out
    (["judge.clip=2.0"], [1.0, 2.0, 0.0], 1.5),
    # running stats over {1, 3}: mean 2, std 1 -> [-1, 1]
    (["judge.normalize=running"], [-1.0, 1.0, 0.0], 0.0),
    # normalised, then clipped to [-0.5, 0.5]
    (["judge.normalize=running", "judge.clip=0.5"], [-0.5, 0.5, 0.0], 0.0),
])
def test_reward_post_processing_by_hand(tiny_models, tmp_path, overrides, processed, processed_mean):
    trainer = PPOTrainer.build(make_config(tiny_models["gpt2"], tmp_path / "run", *overrides),
                         judge=LetterJudge(), prompts=PROMPTS)
    out, metrics = trainer._process_scores([Score(1.0), Score(3.0), Score.failed("no verdict")])
    assert out == pytest.approx(processed)
    assert metrics["reward/mean"] == 2.0 and metrics["reward/std"] == 1.0
    assert (metrics["reward/scored"], metrics["reward/unscored"]) == (2, 1)
    assert metrics["reward/processed_mean"] == pytest.approx(processed_mean)


def test_prompt_stream_is_seeded_and_covers_each_prompt_once_per_epoch():
    stream = PromptStream(5, seed=3)
    first_epoch, second_epoch = stream.indices(0, 5), stream.indices(5, 5)
    assert sorted(first_epoch) == sorted(second_epoch) == [0, 1, 2, 3, 4]
    assert first_epoch != second_epoch  # each epoch is shuffled anew
    assert stream.indices(3, 4) == first_epoch[3:] + second_epoch[:2]  # batches span epochs
    assert PromptStream(5, seed=3).indices(0, 10) == first_epoch + second_epoch
    assert PromptStream(5, seed=4).indices(0, 5) != first_epoch


def test_gradient_accumulation_equals_one_big_minibatch(tiny_models, tmp_path):
    """mini 2 x accumulate 2 gives the same update as one minibatch of 4 (equal-length responses)."""
    params = []
    for i, overrides in enumerate([("ppo.mini_batch_size=4",),
                                   ("ppo.mini_batch_size=2", "ppo.gradient_accumulation_steps=2")]):
        config = make_config(tiny_models["gpt2"], tmp_path / f"run{i}", *overrides,
                             "generation.min_new_tokens=6")  # min = max: no early EOS
        trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
        assert trainer.total_optimizer_steps == 2  # 2 PPO steps x 1 epoch x 1 backward batch
        trainer.step(PROMPTS)
        params.append(_snapshot(trainer.policy, True))
    for name in params[0]:
        torch.testing.assert_close(params[0][name], params[1][name], atol=1e-6, rtol=1e-5)


def test_linear_lr_schedule_counts_optimizer_steps(tiny_models, tmp_path):
    # 2 PPO steps x 2 minibatches = 4 optimizer steps; linear decay from 1e-3 to 0.
    config = make_config(tiny_models["gpt2"], tmp_path / "run", "ppo.lr_scheduler=linear")
    trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
    assert trainer.step()["ppo/lr"] == pytest.approx(1e-3 * 2 / 4)
    assert trainer.step()["ppo/lr"] == pytest.approx(0.0)


def test_step_refuses_a_batch_that_minibatches_cannot_split(tiny_models, tmp_path):
    trainer = PPOTrainer.build(make_config(tiny_models["gpt2"], tmp_path / "run"), judge=LetterJudge(),
                         prompts=PROMPTS)
    with pytest.raises(ValueError, match="step\\(\\) got 3 prompts; pass a multiple of 2"):
        trainer.step(PROMPTS[:3])


@pytest.mark.slow
def test_train_loop_on_hh_sample_writes_metrics_checkpoints_and_summary(tiny_models, tmp_path, capsys):
    run = tmp_path / "run"
    config = make_config(tiny_models["t5"], run, "ppo.steps=3", "output.save_every=2",
                         "data.task=summarize", "data.limit=60", "data.max_prompt_tokens=128")
    # Prompts from the config's data section (the HH sample); the judge from its judge section.
    split = load_prompt_split(config.data, AutoTokenizer.from_pretrained(tiny_models["t5"]))
    assert len(split.train) + len(split.test) <= 60 and split.test
    trainer = PPOTrainer.build(config, split.train)
    assert trainer.prompts == split.train
    assert all(p.startswith("Summarize the following conversation.") for p in trainer.prompts)
    result = trainer.train()

    assert [row["step"] for row in read_metrics(run)] == [1, 2, 3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-2", "step-3"]
    assert result.checkpoint == RunFolder(run).latest_checkpoint() == run / "checkpoints" / "step-3"
    state = json.loads((result.checkpoint / "trainer_state.json").read_text())
    assert (state["step"], state["data_position"], state["num_processes"]) == (3, 12, 1)
    assert {p.name for p in result.checkpoint.iterdir()} == {
        "policy", "optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state_0.pt", "files.json"}
    assert (result.checkpoint / "policy" / "policy.json").is_file()
    assert (run / "config.yaml").is_file()
    out = capsys.readouterr().out
    assert "PPO: 3 step(s) (steps 1..3)" in out and "checkpoint:" in out
    # Starting a fresh run over it is refused rather than silently mixing two runs.
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        PPOTrainer.build(config, split.train)


@pytest.mark.slow
def test_rlaif_train_cli_runs_the_tiny_config(tiny_models, tmp_path, capsys):
    out = tmp_path / "cli-run"
    code = main(["train", str(CONFIGS / "tiny.yaml"), f"model.name_or_path={tiny_models['gpt2']}",
                 "ppo.steps=1", "data.limit=40", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = read_metrics(out)
    assert len(rows) == 1 and rows[0]["batch/size"] == 8
    assert str(out) in (out / "config.yaml").read_text()
    assert RunFolder(out).latest_checkpoint() == out / "checkpoints" / "step-1"


def test_rlaif_train_cli_reports_config_errors(tmp_path, capsys):
    code = main(["train", str(CONFIGS / "tiny.yaml"), "ppo.learnig_rate=1", "--out", str(tmp_path)])
    assert code == 1
    assert "unknown config key 'ppo.learnig_rate' in 'ppo'" in capsys.readouterr().err


def score_rollout(policy, *ids, states, temperature, chunk):
    """The policy pass and the reference pass, as one step runs them."""
    return (*policy_pass(policy, *ids, states=states, temperature=temperature, chunk=chunk),
            reference_pass(policy, *ids, temperature=temperature, chunk=chunk))


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_chunked_rollout_forwards_sort_by_length_and_return_batch_order(tiny_models, tmp_path, arch):
    config = make_config(tiny_models[arch], tmp_path / "run")
    trainer = PPOTrainer.build(config, judge=LetterJudge(), prompts=PROMPTS)
    policy = trainer.policy
    enc = trainer.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    gen = torch.Generator().manual_seed(0)
    response_ids = torch.randint(3, 50, (4, 5), generator=gen)
    response_mask = torch.tensor([[1] * 5, [1, 1, 0, 0, 0], [1] * 4 + [0], [1, 0, 0, 0, 0]])
    args = (policy, enc.input_ids, enc.attention_mask, response_ids * response_mask, response_mask)
    whole = score_rollout(*args, states=None, temperature=1.0, chunk=None)
    single = score_rollout(*args, states=None, temperature=1.0, chunk=1)  # shortest first
    for got, want in zip(single, whole):
        assert got.shape == (4, 5)
        torch.testing.assert_close(got * response_mask, want * response_mask, atol=1e-5, rtol=0)
    if arch == "gpt2":  # scored from generation states, the chunks come back in order too
        ids, states = policy.generate_with_states(enc.input_ids, enc.attention_mask,
                                                  **{**trainer.gen_kwargs, "min_new_tokens": 6})
        mask = torch.ones_like(ids)
        args = (policy, enc.input_ids, enc.attention_mask, ids, mask)
        whole = score_rollout(*args, states=states, temperature=1.0, chunk=None)
        single = score_rollout(*args, states=states, temperature=1.0, chunk=1)
        forward = score_rollout(*args, states=None, temperature=1.0, chunk=None)
        for got, want, full in zip(single, whole, forward):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
            torch.testing.assert_close(got, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("steps, limit, stops_after", [
    (5, 2, 2),   # two unscored steps in a row reach judge.max_unscored_steps = 2
    (1, 3, 1),   # a whole run with nothing scored is not success, even under the limit
])
def test_a_judge_that_scores_nothing_stops_training_and_saves(tiny_models, tmp_path, steps, limit,
                                                              stops_after):
    from rlaif.judges.base import JudgeError

    config = make_config(tiny_models["gpt2"], tmp_path / "run", f"ppo.steps={steps}",
                         f"judge.max_unscored_steps={limit}")
    trainer = PPOTrainer.build(config, judge=LetterJudge(fail_all=True), prompts=PROMPTS)
    with pytest.raises(JudgeError, match=f"scored no sample in the last {stops_after} step"):
        trainer.train()
    assert trainer.step_count == stops_after
    assert RunFolder(tmp_path / "run").latest_checkpoint() == tmp_path / "run" / "checkpoints" / f"step-{stops_after}"


def test_one_unscored_step_among_scored_ones_trains_on(tiny_models, tmp_path):
    class FailsOnce(LetterJudge):
        async def ascore(self, samples):
            scores = await super().ascore(samples)
            return [Score.failed("down for one call") for _ in scores] if len(self.calls) == 2 else scores

    from rlaif.judges.base import Score

    config = make_config(tiny_models["gpt2"], tmp_path / "run", "ppo.steps=3", "judge.max_unscored_steps=2")
    result = PPOTrainer.build(config, judge=FailsOnce(), prompts=PROMPTS).train()
    assert [m["reward/scored"] for m in result.history] == [4, 0, 4]
