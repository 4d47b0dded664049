"""`rlaif label --policy MODEL --engine vllm`: the two samples per prompt come from a vLLM engine
started for MODEL (rlaif.engines.generate.generate_on_vllm), here a server from .venv-vllm.

    - MODEL a LoRA adapter folder: served with the adapter merged; greedy replies are
      transformers' on the merged model, text for text
    - sampled: the same seed gives the same replies, the next seed others
"""

from __future__ import annotations

import pytest
import torch
from ppo_helpers import PROMPTS, one_thread  # noqa: F401  (one_thread: fixture)

from rlaif.engines.generate import generate_on_vllm
from rlaif.engines.vllm_setup import vllm_unavailable_reason
from rlaif.models.generate import generate

REASON = vllm_unavailable_reason()
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(REASON is not None, reason=f"vLLM cannot run here: {REASON}")]

GREEDY = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False}
SAMPLED = {"max_new_tokens": 8, "min_new_tokens": 1, "do_sample": True, "temperature": 1.5,
           "top_k": 0, "top_p": 1.0}


@pytest.fixture(scope="module")
def adapter_dir(vllm_llama, tmp_path_factory):
    """A LoRA adapter (peft folder) on the vLLM Llama, with random weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(vllm_llama),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(vllm_llama).save_pretrained(out)
    return out


def test_an_adapter_is_served_merged_greedy_as_transformers(adapter_dir):
    (served,) = generate_on_vllm(adapter_dir, PROMPTS, gen_kwargs=GREEDY, seeds=[0])
    hf = generate(str(adapter_dir), None, PROMPTS, gen_kwargs=GREEDY, progress=False)
    assert served.texts == hf.texts
    assert served.response_ids == hf.response_ids and all(len(r) == 8 for r in served.response_ids)


def test_seeds_pick_the_samples(vllm_llama):
    a, again, b = generate_on_vllm(vllm_llama, PROMPTS, gen_kwargs=SAMPLED, seeds=[5, 5, 6])
    assert a.texts == again.texts and a.response_ids == again.response_ids
    assert a.response_ids != b.response_ids
