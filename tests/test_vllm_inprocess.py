"""vLLM's engine in the caller's own process (`rlaif.engines.vllm_inprocess`, `vllm.LLM`), on
the CPU, checked against transformers on the same weights, float32 on both sides.

rlaif's environment has no vllm, so `tests/vllm_inprocess_driver.py` runs the engine in vLLM's
(.venv-vllm) and writes what it answered; the weights and the adapter are made here. Checked:

    - greedy replies equal transformers' token for token; a prefill of prompt + reply gives
      transformers' logprobs within 1e-4
    - a seeded sample is the same with the same seed (again, and alone instead of in a batch),
      and the logprobs it returns are the tempered distribution's (processed_logprobs)
    - update_weights(a full fine-tune's safetensors) loads every tensor, and then the engine
      serves the new model's greedy replies and logprobs
    - a LoRA adapter (peft's save_pretrained) under a name serves the merged model's greedy
      replies and logprobs, the base name still the base model's
    - refusals are `EngineError`s that say why; close() leaves no engine process behind
    - PPO with the engine in the trainer's process (generation.vllm.engine auto, where vllm is
      importable: vLLM's environment, which setup_vllm.sh gives rlaif's trainer packages too):
      every step samples from the weights the trainer scores with
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_vllm_weight_sync import NEW_TOKENS, PREFILL_TOL, hf_greedy, hf_logprobs, perturb, prompt_ids

from rlaif.engines.vllm_server import SERVED_NAME
from rlaif.engines.vllm_setup import find_vllm_python, vllm_unavailable_reason
from rlaif.models.synced_weights import save_synced

REASON = vllm_unavailable_reason()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(REASON is not None, reason=f"vLLM cannot run here: {REASON}")]

CHECKOUT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().parent / "vllm_inprocess_driver.py"
TEMPERATURE = 2.0  # flat enough that other seeds sample other tokens
# the logprobs vLLM returns for the tokens it samples come from its decode path, which rounds
# differently from a forward pass (test_vllm_rollouts.py: up to 0.011 at temperature 1)
SAMPLED_TOL = 0.05
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def hf_sample_logprobs(model, prompt: list[int], reply: list[int], temperature: float) -> torch.Tensor:
    """The tempered distribution's log-probabilities of `reply`'s tokens after `prompt`."""
    ids = torch.tensor([prompt + reply])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(reply)[:, None])[:, 0]


def assert_close(served: list[list[float]], model, prompts, replies, tol=PREFILL_TOL) -> None:
    for got, prompt, reply in zip(served, prompts, replies):
        gap = (torch.tensor(got) - hf_logprobs(model, prompt, reply)).abs().max()
        assert gap < tol, (prompt, reply, float(gap))


@pytest.fixture(scope="module")
def run(vllm_llama, tmp_path_factory):
    """The weights (a full fine-tune's file, a LoRA adapter folder), the driver's answers, and
    the three models they should match: {"out", "prompts", "base", "full", "merged"}."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    work = tmp_path_factory.mktemp("vllm-inprocess")
    prompts = prompt_ids(vllm_llama)

    def load():
        return AutoModelForCausalLM.from_pretrained(vllm_llama, dtype=torch.float32).eval()

    base, full = load(), load()
    perturb(full, seed=1, std=0.5)
    assert save_synced(full, work / "full.safetensors") == len(list(full.parameters()))

    # every projection (vLLM's fused q/k/v and gate/up layers too), small enough that the
    # replies differ from the base model's without falling into repeating one token
    peft_model = get_peft_model(load(), LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(2)
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    peft_model.save_pretrained(work / "adapter")
    merged = peft_model.merge_and_unload().eval()

    plan = {"model": str(vllm_llama), "prompts": prompts, "full": str(work / "full.safetensors"),
            "adapter": str(work / "adapter"), "new_tokens": NEW_TOKENS, "temperature": TEMPERATURE}
    (work / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT), "HF_HUB_OFFLINE": "1",
           "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run([str(find_vllm_python()), str(DRIVER), str(work / "plan.json"),
                           str(work / "out.json")], env=env, cwd=work, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, f"the driver failed ({done.returncode}):\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-6000:]}"
    out = json.loads((work / "out.json").read_text(encoding="utf-8"))
    print(f"engine start {out['start_s']:.1f}s, driver {out['total_s']:.1f}s", file=sys.stderr)
    return {"out": out, "prompts": prompts, "base": base, "full": full, "merged": merged}


def test_greedy_and_prefill_match_transformers(run):
    out, prompts = run["out"], run["prompts"]
    assert out["healthy"] and out["models"] == [SERVED_NAME]
    assert out["base_greedy"] == hf_greedy(run["base"], prompts)
    assert all(len(r) == NEW_TOKENS for r in out["base_greedy"])
    assert_close(out["base_scored"], run["base"], prompts, out["base_greedy"])


def test_a_seed_gives_the_same_sample(run):
    out, prompts = run["out"], run["prompts"]
    assert out["sampled"] == out["sampled_again"]
    assert out["sampled_alone"] == out["sampled"][1]  # alone, as in the batch of four
    assert out["sampled_other_seeds"] != out["sampled"]
    assert out["sampled"] != out["base_greedy"]  # sampled, not greedy
    assert out["sampled_finish"] == ["length"] * len(prompts)
    for got, prompt, reply in zip(out["sampled_logprobs"], prompts, out["sampled"]):
        want = hf_sample_logprobs(run["base"], prompt, reply, TEMPERATURE)
        assert (torch.tensor(got) - want).abs().max() < SAMPLED_TOL, (reply, got, want.tolist())
        # the tempered distribution's, not the raw one's
        assert (torch.tensor(got) - hf_logprobs(run["base"], prompt, reply)).abs().max() > 10 * SAMPLED_TOL


def test_update_weights_serves_the_new_model(run):
    out, prompts, full = run["out"], run["prompts"], run["full"]
    assert out["update_count"] == len(list(full.parameters()))
    assert out["full_greedy"] == hf_greedy(full, prompts)
    assert out["full_greedy"] != out["base_greedy"]
    assert_close(out["full_scored"], full, prompts, out["full_greedy"])
    embed = float(full.model.embed_tokens.weight.detach().sum())
    assert out["weight_sums"]["model.embed_tokens.weight"] == pytest.approx(embed, rel=1e-5, abs=1e-3)


def test_a_lora_adapter_serves_the_merged_model(run):
    out, prompts, merged = run["out"], run["prompts"], run["merged"]
    assert out["lora_models"] == [SERVED_NAME, "policy-1"]
    assert out["lora_greedy"] == hf_greedy(merged, prompts)
    assert all(a != b for a, b in zip(out["lora_greedy"], out["base_greedy"]))
    assert_close(out["lora_scored"], merged, prompts, out["lora_greedy"])
    assert out["lora_base_greedy"] == out["base_greedy"]


def test_refusals_say_why_and_close_leaves_no_process(run):
    out = run["out"]
    assert "started without LoRA" in out["no_lora_refusal"]
    assert "serves no model 'nope'" in out["unknown_model_refusal"]
    assert "name is taken" in out["taken_refusal"]
    assert "refused to load the LoRA adapter" in out["bad_adapter_refusal"]
    assert "serves no model 'policy-1'" in out["unloaded_refusal"]
    assert "VLLM::EngineCore" in out["children_open"]  # its own process, and its workers
    assert out["children_closed"] == []
    assert not out["healthy_closed"]
    assert out["closed_refusal"] == "the in-process vLLM engine was closed"


def test_ppo_runs_with_the_engine_in_the_trainers_process(vllm_llama, tmp_path):
    python = find_vllm_python()
    trainer_deps = subprocess.run([str(python), "-c", "import peft, accelerate"], capture_output=True,
                                  text=True, check=False)
    assert trainer_deps.returncode == 0, (
        f"{python} lacks rlaif's trainer packages; rebuild it with bash scripts/setup_vllm.sh "
        f"(it installs them): {trainer_deps.stderr[-500:]}")
    env = {**os.environ, "PYTHONPATH": f"{CHECKOUT}{os.pathsep}{CHECKOUT / 'tests'}",
           "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out.json"
    done = subprocess.run([str(python), str(CHECKOUT / "tests" / "vllm_inprocess_ppo.py"), str(vllm_llama),
                           str(tmp_path / "run"), str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"the driver failed ({done.returncode}):\n{done.stderr[-6000:]}"
    result = json.loads(out.read_text(encoding="utf-8"))
    history = result["history"]
    assert result["engine"] == "inprocess" and result["closed"] and len(history) == 8
    assert all(m["time/weight_sync"] > 0 and m["rollout/stale"] == 0.0 for m in history)
    # Fresh weights every step: the sampler/trainer KL stays at the decode path's rounding
    # (seen: 1e-8 to 2e-3), while the policy moves away from its start (a sampler one update
    # behind gives 0.19 and more here: test_vllm_rollouts.py)
    assert max(m["rollout/sampler_kl"] for m in history) < 1e-2
    assert history[-1]["objective/kl"] > 1e-3, [m["objective/kl"] for m in history]
