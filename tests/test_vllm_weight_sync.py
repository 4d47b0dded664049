"""The in-place weight sync on a real vLLM server on the CPU (generation.vllm.sync weights).

rlaif writes the tensors training changed to a safetensors file and the server's worker
extension (rlaif/engines/vllm_worker/) reloads them in place, through vLLM's own reload path
(its CPU kernels repack weights, and q/k/v and gate/up are fused layers). Checked here against
transformers on the same weights, float32 on both sides:

    - a full fine-tune's weights: after the update the server's greedy replies are the new
      model's, token for token, and not the old one's
    - a LoRA policy's adapted layers merged in (only q/k/v sent): the layers not sent keep the
      weights loaded before, the sent ones take the new values
    - a server without the worker extension's route is an error that says what it lacks
    - a model whose architecture vLLM does not serve: the error says so
"""

from __future__ import annotations

import pytest
import torch
from ppo_helpers import PROMPTS, one_thread  # noqa: F401  (one_thread: fixture)

from rlaif.engines.vllm_client import EngineError, VLLMClient
from rlaif.engines.vllm_server import SERVED_NAME, ServerSpec, VLLMServer
from rlaif.engines.vllm_setup import find_vllm_python, vllm_unavailable_reason
from rlaif.models.synced_weights import save_synced, synced_weights

REASON = vllm_unavailable_reason()
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(REASON is not None, reason=f"vLLM cannot run here: {REASON}")]

NEW_TOKENS = 8
GREEDY = {"max_tokens": NEW_TOKENS, "min_tokens": NEW_TOKENS, "temperature": 0.0}
# vLLM's prefill matches transformers to ~2e-6 on these weights (measured); its decode path
# does not (up to 0.11 on a perturbed model), so the weights are checked through a prefill
PREFILL_TOL = 1e-4


@pytest.fixture(scope="module")
def server(vllm_llama, tmp_path_factory):
    """A vLLM server on the Llama without LoRA: its weights change only in place."""
    spec = ServerSpec(model=str(vllm_llama), python=str(find_vllm_python()), dtype="float32",
                      max_lora_rank=None, max_model_len=256, kv_cache_gb=1,
                      extra_args=["--skip-tokenizer-init"])
    started = VLLMServer.start(spec, log_dir=tmp_path_factory.mktemp("vllm-log"))
    yield started
    started.stop()


def prompt_ids(llama_dir) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama_dir)
    return [tok(p)["input_ids"] for p in PROMPTS]


def hf_greedy(model, prompts: list[list[int]]) -> list[list[int]]:
    """transformers' greedy replies, one prompt at a time (no padding), EOS not allowed."""
    out = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            y = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                               max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                               pad_token_id=model.config.eos_token_id)
            out.append(y[0, len(ids):].tolist())
    return out


def hf_logprobs(model, prompt: list[int], reply: list[int]) -> torch.Tensor:
    """The model's log-probabilities of `reply`'s tokens after `prompt`."""
    ids = torch.tensor([prompt + reply])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(reply)[:, None])[:, 0]


def served_greedy(client: VLLMClient, prompts: list[list[int]]):
    return client.complete_batch(SERVED_NAME, prompts, GREEDY, seeds=[0] * len(prompts))


def assert_serves(client, model, prompts) -> list[list[int]]:
    """The server holds `model`'s weights: its greedy replies are `model`'s, and one prefill of
    prompt + reply gives `model`'s logprobs to float rounding (its decode path rounds further:
    test_vllm_rollouts.py)."""
    served = served_greedy(client, prompts)
    replies = [c.token_ids for c in served]
    assert replies == hf_greedy(model, prompts)
    for prompt, reply in zip(prompts, replies):
        scored = client.prompt_logprobs(SERVED_NAME, prompt + reply)[len(prompt):]
        gap = (torch.tensor(scored) - hf_logprobs(model, prompt, reply)).abs().max()
        assert gap < PREFILL_TOL, (prompt, reply, gap)
    return replies


def perturb(module: torch.nn.Module, seed: int, std: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * std * p.std().clamp(min=1e-3))


def test_full_and_merged_lora_weights_reach_the_server(vllm_llama, server, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    prompts = prompt_ids(vllm_llama)
    model = AutoModelForCausalLM.from_pretrained(vllm_llama, dtype=torch.float32).eval()
    before = assert_serves(server.client, model, prompts)

    # a full fine-tune: every weight changes
    perturb(model, seed=1, std=0.5)
    n = save_synced(model, tmp_path / "full.safetensors")
    assert n == len(list(model.parameters()))
    assert server.client.update_weights(str(tmp_path / "full.safetensors")) == n
    after_full = assert_serves(server.client, model, prompts)
    assert after_full != before

    # a LoRA policy on the fine-tuned weights: q/k/v (the fused layer) sent, the rest kept
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(2)
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    sent = synced_weights(peft_model)
    assert sorted({k.rsplit(".", 2)[-2] for k in sent}) == ["k_proj", "q_proj", "v_proj"]
    server.client.update_weights(str(tmp_path / "lora.safetensors")) if save_synced(
        peft_model, tmp_path / "lora.safetensors") else None
    merged = peft_model.merge_and_unload().eval()
    after_lora = assert_serves(server.client, merged, prompts)
    assert after_lora != after_full


def test_a_server_without_the_extension_route_says_so(tmp_path):
    from rlaif.engines.vllm_server import free_port

    client = VLLMClient(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(EngineError, match="is the vLLM server running"):
        client.update_weights(str(tmp_path / "w.safetensors"))


def test_an_architecture_vllm_does_not_serve_is_named(vllm_llama, tmp_path):
    import json
    import shutil

    from rlaif.engines.vllm_server import EngineDied

    model = tmp_path / "model"
    shutil.copytree(vllm_llama, model)
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["RlaifMadeUpForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    spec = ServerSpec(model=str(model), python=str(find_vllm_python()), max_lora_rank=None,
                      max_model_len=256, kv_cache_gb=1, extra_args=["--skip-tokenizer-init"])
    with pytest.raises(EngineDied, match=r"while starting: vLLM does not serve this model's "
                       r"architecture.*generation.backend=hf(.|\n)*RlaifMadeUpForCausalLM"):
        VLLMServer.start(spec, log_dir=tmp_path / "log")
