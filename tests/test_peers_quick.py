"""The peer benchmark's arithmetic (benchmarks/peers*.py): no model is trained here.

The benchmark itself (and its TRL 1.12 environment) is not part of the suite; these pin the
numbers it derives: the weight bytes generation must read, the reward-per-minute slope, the
step split, and the alternation order of the workers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _protocol
import peers
import peers_mfu
import peers_workers


@pytest.mark.parametrize("tied", [True, False])
def test_decode_weight_bytes_counts_every_decoder_weight_and_the_head_once(tmp_path, tied):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=24, intermediate_size=40, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path)
    # every parameter, less the input embedding (a lookup reads rows) unless it is the head too
    params = sum(p.numel() for p in model.parameters())
    if not tied:
        params -= model.get_input_embeddings().weight.numel()
    assert peers_mfu.decode_weight_bytes(str(tmp_path)) == 4 * params
    assert peers_mfu.decode_weight_bytes(str(tmp_path), bytes_per_param=2) == 2 * params


def test_matmul_shapes_cover_the_projections_and_the_head():
    from transformers import LlamaConfig

    c = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=160,
                    num_attention_heads=8, num_key_value_heads=2)
    assert peers_mfu.matmul_shapes(c, 10) == [(10, 64, 64), (10, 64, 16), (10, 64, 160),
                                              (10, 160, 64), (10, 64, 1000)]


def test_matmul_peak_is_the_best_shape():
    out = peers_mfu.matmul_peak([(8, 16, 16), (64, 64, 64)], repeats=1)
    assert out["peak"] == max(r["flops_per_s"] for r in out["rows"])
    assert all(r["flops_per_s"] > 0 for r in out["rows"])


@pytest.mark.parametrize("rewards, seconds, slope", [
    ([0.1, 0.2, 0.3, 0.4], [30, 30, 30, 30], 0.2),   # +0.1 every half minute
    ([0.5, 0.5, 0.5], [60, 10, 20], 0.0),            # flat, uneven steps
    ([0.9, 0.6, 0.3], [60, 60, 60], -0.3),           # getting worse
])
def test_reward_per_minute_is_the_least_squares_slope(rewards, seconds, slope):
    steps = [{"reward_mean": r, "step": s} for r, s in zip(rewards, seconds)]
    assert peers.reward_per_minute(steps) == pytest.approx(slope, abs=1e-9)


def test_step_record_splits_the_step():
    clock = _protocol.StepClock()
    clock.add("generate", 1.5)
    clock.add("reward", 0.25)
    clock.add("generate", 0.5)
    rec = clock.record(16, 512)
    assert rec["generate"] == pytest.approx(2.0) and rec["reward"] == pytest.approx(0.25)
    assert rec["update"] == pytest.approx(rec["step"] - 2.25)
    assert rec["samples"] == 16 and rec["tokens"] == 512 and rec["peak_rss_mb"] > 0


def test_interleave_rotates_the_order_every_round():
    calls = []

    class FakeWorker:
        def __init__(self, name):
            self.name = name

        def step(self):
            calls.append(self.name)
            return {"step": 1.0, "generate": 0.0, "reward": 0.0, "update": 1.0}

    peers_workers.interleave([FakeWorker("a"), FakeWorker("b"), FakeWorker("c")], 3, quiet=True)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_cost_table_prints_the_ratios_the_issue_asks_for(capsys):
    def worker(name, step, generate, reward, peak, baseline):
        w = peers_workers.Worker(name, proc=None, log=Path("unused"))
        w.steps = [{"step": step, "generate": generate, "reward": reward,
                    "update": step - generate - reward, "samples": 16, "tokens": 512}] * 2
        w.ready, w.final = {"baseline_rss_mb": baseline}, {"peak_rss_mb": peak}
        return w

    workers = {"trl-ppo": worker("trl-ppo", 50.0, 9.0, 5.0, 5000.0, 500.0),
               "grpo": worker("grpo", 32.0, 10.0, 5.0, 2800.0, 500.0),
               "rlaif": worker("rlaif", 20.0, 9.0, 2.0, 2300.0, 400.0)}
    peers.print_cost(workers, 2)
    out = capsys.readouterr().out
    lines = {line.split(":")[0]: line for line in out.splitlines() if ":" in line}
    # 50 / 20 = 2.50x; memory (2300 - 400) / (5000 - 500) = 0.42x; without reward 45 / 18
    assert "step 2.50x faster (target >= 2x: met)" in lines["rlaif vs TRL PPO 1.12"]
    assert "peak memory 0.42x of TRL PPO's (target <= 0.8x: met)" in lines["rlaif vs TRL PPO 1.12"]
    assert "2.50x faster" in lines["rlaif vs TRL PPO 1.12 without the reward call"]
    # per sample 1.25 s vs 2.00 s
    assert "1.25s vs 2.00s, 1.60x (target rlaif <= GRPO: met)" in lines["rlaif vs TRL GRPO"]
    assert "generated tokens / s" in out and "25.6" in out  # 512 tokens / 20 s
