"""RUN/final: a standard HF model folder that plain transformers loads and that generates what
rlaif's own policy generates; `rlaif export` for any checkpoint; an adapter folder with --no-merge."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from ppo_helpers import make_config

from rlaif.cli import main

PROMPTS = ["Human: hello there. Assistant:", "Human: Tell me a joke. Assistant:",
           "Human: You are stupid. Assistant:"]
GREEDY_TOKENS = 8

# Run in a fresh interpreter: transformers alone loads final/ and decodes greedily.
PLAIN_LOAD = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
final, prompts, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(final)
model = AutoModelForCausalLM.from_pretrained(final)
out = []
for p in prompts:
    ids = tok(p, return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    out.append(gen[0, ids["input_ids"].shape[1]:].tolist())
print(json.dumps({"tokens": out, "rlaif_imported": "rlaif" in sys.modules,
                  "max_new_tokens": model.generation_config.max_new_tokens}))
"""


@pytest.fixture(scope="module")
def lora_run(tiny_models, tmp_path_factory):
    """A tiny GPT-2 + LoRA trained 2 PPO steps (checkpoints at 1 and 2), evaluated before/after."""
    from rlaif.runs.lifecycle import train_ppo

    run = tmp_path_factory.mktemp("export") / "run"
    evaluator = {"type": "classifier", "model": str(tiny_models["roberta"]), "label": "nothate"}
    config = make_config(tiny_models["gpt2"], run, "output.save_every=1",
                         model={"lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
                         eval={"enabled": True, "n": 4, "evaluator": evaluator},
                         data={"test_size": 0.2})
    result = train_ppo(config, progress=False)
    return run, result


def _policy_greedy(policy, tokenizer, prompts, n):
    out = []
    for p in prompts:
        ids = tokenizer(p, return_tensors="pt")
        gen = policy.model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        out.append(gen[0, ids["input_ids"].shape[1]:].tolist())
    return out


@pytest.mark.slow
def test_final_loads_with_plain_transformers_and_generates_like_the_policy(lora_run):
    from rlaif.models.load import load_tokenizer
    from rlaif.ppo.policy import PolicyWithValueHead

    run, result = lora_run
    final = run / "final"
    assert result.paths["final"] == final and result.paths["card"] == final / "README.md"
    names = {p.name for p in final.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "README.md"} <= names
    assert not names & {"value_head.pt", "adapter_config.json", "policy.json"}  # plain model only

    proc = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(final), json.dumps(PROMPTS),
                           str(GREEDY_TOKENS)], capture_output=True, text=True, check=True)
    plain = json.loads(proc.stdout.strip().splitlines()[-1])
    assert plain["rlaif_imported"] is False
    # The generation config is the run's (make_config: max_new_tokens 6).
    assert plain["max_new_tokens"] == 6
    # rlaif's own trained policy: the last checkpoint, adapter on the base, not merged.
    policy = PolicyWithValueHead.load(run / "checkpoints" / "step-2" / "policy")
    policy.eval()
    tokenizer = load_tokenizer(str(run / "final"))
    ours = _policy_greedy(policy, tokenizer, PROMPTS, GREEDY_TOKENS)
    assert plain["tokens"] == ours
    # ... because the logits agree to float rounding (merged weights vs base + adapter).
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(final)
    ids = tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        trained = policy.model(**ids).logits
        torch.testing.assert_close(merged(**ids).logits, trained, atol=1e-4, rtol=1e-4)
        with policy.model.disable_adapter():  # and the training moved them: not the base model
            assert (policy.model(**ids).logits - trained).abs().max() > 1e-3


@pytest.mark.slow
def test_the_card_holds_the_reports_numbers(lora_run):
    from rlaif.markdown import fmt_num

    run, _ = lora_run
    card = (run / "final" / "README.md").read_text()
    report = json.loads((run / "report.json").read_text())
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "transformers"
    assert {"rlaif", "ppo", "lora"} <= set(front["tags"])
    assert "base_model" not in front  # a local folder is no Hub id
    stats = report["stats"]
    assert f"| mean toxicity | {fmt_num(stats['before']['mean'])} | {fmt_num(stats['after']['mean'])} |" in card
    d = stats["difference"]
    assert f"[{d['ci_low']:.4g}, {d['ci_high']:.4g}]" in card
    for key, value in report["kl"].items():
        assert f"{key} = {value:.4g}" in card
    assert f"Evaluator `{report['meta']['evaluator']}`" in card
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert f"step 1 {metrics[0]['reward/mean']:.4g} -> last {metrics[-1]['reward/mean']:.4g}" in card
    assert "## PPO settings" in card and "| `learning_rate` | `0.001` |" in card
    assert "e_share" in card  # the reward judge's spec


@pytest.mark.slow
def test_evaluate_accepts_a_runs_final_folder(lora_run, tiny_models, tmp_path):
    run, _ = lora_run
    spec = tmp_path / "evaluator.yaml"
    spec.write_text(f"type: classifier\nmodel: {tiny_models['roberta']}\nlabel: nothate\n")
    rc = main(["evaluate", "--before", str(tiny_models["gpt2"]), "--after", str(run / "final"),
               "--evaluator", str(spec),
               "--n", "4", "--max-new-tokens", "4", "--out", str(tmp_path / "ev")])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["meta"]["after_model"] == "final"  # no absolute local path in a report (local_paths.py)
    # The training KL row comes from the run's metrics.jsonl beside final/.
    assert any(k.startswith("training objective/kl") for k in report["kl"])


@pytest.mark.slow
def test_export_cli_for_a_checkpoint_and_a_run(lora_run, tmp_path, capsys):
    from safetensors.torch import load_file

    run, _ = lora_run
    assert main(["export", str(run), "--out", str(tmp_path / "last")]) == 0
    ours, final = load_file(tmp_path / "last" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert ours.keys() == final.keys()
    for key in ours:  # the same merge from the saved checkpoint as from the live policy
        torch.testing.assert_close(ours[key], final[key], atol=1e-6, rtol=1e-5)
    assert main(["export", str(run / "checkpoints" / "step-1"), "--out", str(tmp_path / "one")]) == 0
    first = load_file(tmp_path / "one" / "model.safetensors")
    assert max((first[k] - ours[k]).abs().max().item() for k in ours) > 0  # step 1 is another model
    card = (tmp_path / "one" / "README.md").read_text()
    assert "last step 1," in card
    assert "the run evaluated its last step, not this checkpoint" in card
    assert "| mean toxicity |" not in card  # no hold-out number for a model that was not evaluated
    assert "model card:" in capsys.readouterr().out


def test_export_cli_refuses_what_is_no_checkpoint(tiny_models, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(tiny_models["gpt2"]), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "policy.json" in err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_no_merge_run_leaves_a_peft_adapter(tiny_models, tmp_path):
    from peft import AutoPeftModelForCausalLM

    from rlaif.models.load import load_model
    from rlaif.runs.lifecycle import train_ppo
    from rlaif.ppo.policy import PolicyWithValueHead

    run = tmp_path / "run"
    config = make_config(tiny_models["gpt2"], run, "output.merge_lora=false", "ppo.steps=1",
                         model={"lora": {"r": 4, "alpha": 8, "dropout": 0.0}})
    result = train_ppo(config, progress=False)
    final = result.paths["final"]
    names = {p.name for p in final.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
            "generation_config.json", "README.md"} <= names
    assert "model.safetensors" not in names
    front = yaml.safe_load((final / "README.md").read_text().split("---\n")[1])
    assert front["library_name"] == "peft"
    assert "Not run for this model (eval.enabled was false)" in (final / "README.md").read_text()
    adapter = AutoPeftModelForCausalLM.from_pretrained(final)
    policy = PolicyWithValueHead.load(run / "checkpoints" / "step-1" / "policy")
    ids = torch.tensor([[5, 17, 42, 8]])
    with torch.no_grad():
        torch.testing.assert_close(adapter(input_ids=ids).logits, policy.model(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)
        # rlaif's own loader (`rlaif evaluate --after RUN/final`) reads the adapter folder too.
        torch.testing.assert_close(load_model(final, device="cpu")(input_ids=ids).logits,
                                   policy.model(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def _randomise_lora(model, seed=0):
    """LoRA B matrices start at zero (the adapter adds nothing): give them values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)


def test_write_final_merges_a_copy_and_keeps_the_chat_template(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlaif.config import LoraSettings
    from rlaif.export import write_final
    from rlaif.models.tiny import LlamaSettings, build_llama
    from rlaif.models.lora import wrap_lora
    from rlaif.testing.tiny import DEFAULT_CORPUS

    settings = LlamaSettings(vocab_size=320, context_length=256, hidden_size=32, intermediate_size=64,
                             num_layers=2, num_heads=4, num_kv_heads=2, seed=0)
    base, tokenizer = build_llama(DEFAULT_CORPUS * 4, settings)
    lm = wrap_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0))
    _randomise_lora(lm)
    lm.eval()
    ids = torch.tensor([[3, 40, 41, 99, 7]])
    with torch.no_grad():
        logits = lm(input_ids=ids).logits
    params = {n: p.detach().clone() for n, p in lm.named_parameters()}
    out = write_final(lm, tokenizer, tmp_path / "final", generation_config={"max_new_tokens": 9},
                      card="---\ntags: [rlaif]\n---\n# card\n")
    # The caller's model is untouched: same parameters, adapters still separate and working.
    assert all(torch.equal(params[n], p) for n, p in lm.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(lm(input_ids=ids).logits, logits, atol=0, rtol=0)
        merged = AutoModelForCausalLM.from_pretrained(out)
        torch.testing.assert_close(merged(input_ids=ids).logits, logits, atol=1e-5, rtol=1e-5)
        with lm.disable_adapter():  # the adapter matters: the merged model is not the base
            assert (lm(input_ids=ids).logits - logits).abs().max() > 1e-2
    messages = [{"role": "user", "content": "hello there"}]
    loaded = AutoTokenizer.from_pretrained(out)
    assert loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert merged.generation_config.max_new_tokens == 9
    assert (out / "README.md").read_text().startswith("---\ntags: [rlaif]")
    # Written again over itself: replaced whole, no temporary folder left beside it.
    write_final(lm, tokenizer, out)
    assert not (out / "README.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_write_final_exports_a_seq2seq_lora_policy(tiny_models, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from rlaif.config import LoraSettings
    from rlaif.export import write_final
    from rlaif.models.load import load_tokenizer
    from rlaif.ppo.policy import PolicyWithValueHead

    policy = PolicyWithValueHead.from_pretrained(str(tiny_models["t5"]),
                                                 lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    _randomise_lora(policy.model, seed=1)
    policy.eval()
    out = write_final(policy, load_tokenizer(str(tiny_models["t5"])), tmp_path / "final")
    merged = AutoModelForSeq2SeqLM.from_pretrained(out)
    ids, dec = torch.tensor([[5, 9, 14, 2]]), torch.tensor([[0, 7, 11]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids, decoder_input_ids=dec).logits,
                                   policy.model(input_ids=ids, decoder_input_ids=dec).logits,
                                   atol=1e-5, rtol=1e-5)
        with policy.model.disable_adapter():  # the merged adapter matters
            base = policy.model(input_ids=ids, decoder_input_ids=dec).logits
        assert (merged(input_ids=ids, decoder_input_ids=dec).logits - base).abs().max() > 1e-3
    assert not (out / "value_head.pt").exists()


@pytest.mark.slow
def test_the_demo_leaves_a_final_model_a_pipeline_loads(tmp_path, capsys):
    """`rlaif demo` (the toy one, at a tiny size) writes final/ through the same pipeline as train."""
    from transformers import pipeline

    from rlaif.demo import run_demo
    from rlaif.demo.settings import AssetSettings, EvaluatorSettings, PolicySettings

    tiny = AssetSettings(
        policy=PolicySettings(vocab_size=300, n_embd=16, n_layer=1, n_head=2, steps=2, batch_size=4,
                              warmup=0, max_length=64),
        evaluator=EvaluatorSettings(vocab_size=300, hidden_size=16, num_layers=1, num_heads=2,
                                    epochs=1, batch_size=16))
    out = tmp_path / "demo"
    result = run_demo(out, toy=True, asset_settings=tiny, cache_dir=tmp_path / "cache", progress=False,
                      overrides=["ppo.steps=1", "ppo.batch_size=4", "ppo.mini_batch_size=2", "eval.n=4",
                                 "generation.max_new_tokens=6"])
    assert result.paths["final"] == out / "final"
    printed = capsys.readouterr().out
    assert f"model: {out / 'final'}" in printed and f"final model: {out / 'final'}" in printed
    generate = pipeline("text-generation", model=str(out / "final"), device="cpu")
    reply = generate("Human: hello there. Assistant:", max_new_tokens=4, do_sample=False)
    assert reply[0]["generated_text"].startswith("Human: hello there. Assistant:")
    card = (out / "final" / "README.md").read_text()
    assert "| mean toxicity | " in card and "profanity-check" in card
    # A re-run of the demo with --overwrite replaces the earlier run's files, final/ included.
    from rlaif.demo.run import RUN_EXTRAS
    from rlaif.runs.folder import RunFolder

    RunFolder(out, RUN_EXTRAS).claim(resume=None, overwrite=True)
    assert not (out / "final").exists() and not (out / "report.json").exists()
