"""Run config: defaults, dotted overrides, unknown keys, cross-field rules, shipped configs, saving."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlaif.config import RunConfig, load_config, save_config
from rlaif.overrides import apply_override

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
MINIMAL = {"model": {"name_or_path": "gpt2"}, "judge": {"ref": "roberta-hate"}}


def test_defaults_are_the_walkthroughs_ppo_settings():
    c = load_config(data=MINIMAL)
    assert (c.ppo.learning_rate, c.ppo.batch_size, c.ppo.mini_batch_size, c.ppo.ppo_epochs) == (
        1.41e-5, 16, 4, 1)
    assert (c.ppo.gamma, c.ppo.lam, c.ppo.cliprange, c.ppo.cliprange_value, c.ppo.vf_coef) == (
        1.0, 0.95, 0.2, 0.2, 0.1)
    assert (c.ppo.kl.kind, c.ppo.kl.kl_coef, c.ppo.kl.estimator) == ("fixed", 0.2, "k1")
    assert (c.generation.top_k, c.generation.top_p, c.generation.do_sample) == (0, 1.0, True)
    assert c.judge.on_unscored == "skip" and c.model.lora is None


@pytest.mark.parametrize("override, path, expected", [
    ("ppo.learning_rate=1e-3", ("ppo", "learning_rate"), 1e-3),  # YAML reads 1e-3 as a string
    ("ppo.learning_rate=1.5e-4", ("ppo", "learning_rate"), 1.5e-4),
    ("ppo.steps=7", ("ppo", "steps"), 7),
    ("generation.do_sample=false", ("generation", "do_sample"), False),
    ("ppo.kl.kl_coef=0.05", ("ppo", "kl", "kl_coef"), 0.05),  # three levels deep
    ("model.lora.r=8", ("model", "lora", "r"), 8),  # creates the lora section
    ("model.lora.target_modules=[q, v]", ("model", "lora", "target_modules"), ["q", "v"]),
    ("ppo.max_grad_norm=null", ("ppo", "max_grad_norm"), None),
    ("judge.ref={type: function, function: 'm:f', scale: [0, 1]}", ("judge", "ref"),
     {"type": "function", "function": "m:f", "scale": [0, 1]}),  # an inline judge spec
])
def test_dotted_overrides_parse_values_as_yaml(override, path, expected):
    c = load_config(data=MINIMAL, overrides=[override])
    value = c
    for part in path:
        value = getattr(value, part)
    assert value == expected


def test_override_without_equals_names_the_fix():
    with pytest.raises(ValueError, match=r"'ppo.steps' is not key=value; write e.g. ppo.learning_rate=1e-5"):
        load_config(data=MINIMAL, overrides=["ppo.steps"])


def test_override_into_a_scalar_is_refused():
    data = {"a": 1}
    with pytest.raises(ValueError, match="'a' holds 1, not a section"):
        apply_override(data, "a.b=2")


@pytest.mark.parametrize("data, overrides, key, where, valid", [
    ({**MINIMAL, "ppo": {"learnig_rate": 1e-3}}, [], "ppo.learnig_rate", "in 'ppo'", "learning_rate"),
    (MINIMAL, ["ppo.kl.coef=0.1"], "ppo.kl.coef", "in 'ppo.kl'", "kl_coef"),
    (MINIMAL, ["model.lora.rank=8"], "model.lora.rank", "in 'model.lora'", "target_modules"),
    ({**MINIMAL, "trainer": {}}, [], "trainer", "at the top level", "generation"),
])
def test_unknown_keys_fail_naming_the_key_and_the_valid_ones(data, overrides, key, where, valid):
    with pytest.raises(ValueError) as err:
        load_config(data=data, overrides=overrides)
    message = str(err.value)
    assert f"unknown config key '{key}' {where}; valid keys:" in message
    assert valid in message


@pytest.mark.parametrize("overrides, fragments", [
    # 10 prompts cannot be cut into backward batches of 4 * 1
    (["ppo.batch_size=10"], ["ppo.batch_size=10 is not a multiple of", "= 4 * 1 = 4",
                             "set batch_size to a multiple of 4 (e.g. 8)"]),
    (["ppo.batch_size=16", "ppo.mini_batch_size=4", "ppo.gradient_accumulation_steps=3"],
     ["= 4 * 3 = 12", "multiple of 12"]),
    (["generation.min_new_tokens=50", "generation.max_new_tokens=20"],
     ["generation.min_new_tokens=50 exceeds generation.max_new_tokens=20", "lower min_new_tokens"]),
    (["ppo.kl.kind=adaptive"], ["needs ppo.kl.target", "ppo.kl.kind=fixed"]),
    (["data.min_prompt_tokens=300", "data.max_prompt_tokens=200"],
     ["data.min_prompt_tokens=300 exceeds data.max_prompt_tokens=200"]),
    (["accelerate.cpu=true", "accelerate.mixed_precision=fp16"], ["fp16 autocast needs a GPU"]),
    (["ppo.learning_rate=-1"], ["ppo.learning_rate", "greater than 0", "got -1"]),
    (["judge.on_unscored=ignore"], ["judge.on_unscored", "'skip' or 'fail'", "got 'ignore'"]),
])
def test_rule_violations_give_value_rule_and_fix(overrides, fragments):
    with pytest.raises(ValueError) as err:
        load_config(data=MINIMAL, overrides=overrides)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_judge_path_relative_to_the_config_file(tmp_path):
    (tmp_path / "my-judge.yaml").write_text("type: function\nfunction: m:f\nscale: [0, 1]\n")
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(yaml.safe_dump({"model": {"name_or_path": "gpt2"},
                                        "judge": {"ref": "my-judge.yaml"}}))
    assert load_config(cfg_file).judge.ref == str((tmp_path / "my-judge.yaml").resolve())
    # A built-in name is not a file next to the config: it stays a name.
    cfg_file.write_text(yaml.safe_dump(MINIMAL))
    assert load_config(cfg_file).judge.ref == "roberta-hate"


@pytest.mark.parametrize("name", ["flan-t5-hh-roberta", "llama-hh-claude", "tiny"])
def test_shipped_configs_validate(name):
    c = load_config(CONFIGS / f"{name}.yaml")
    assert isinstance(c, RunConfig)


def test_flan_t5_config_is_the_walkthrough():
    c = load_config(CONFIGS / "flan-t5-hh-roberta.yaml")
    assert c.model.name_or_path == "google/flan-t5-base"
    assert (c.model.lora.r, c.model.lora.alpha, c.model.lora.target_modules) == (32, 32, ["q", "v"])
    assert (c.ppo.learning_rate, c.ppo.batch_size, c.ppo.mini_batch_size, c.ppo.ppo_epochs) == (
        1.41e-5, 16, 4, 1)
    assert c.judge.ref == "roberta-hate" and c.data.task == "summarize"
    assert (c.data.source, c.data.data_dir) == ("Anthropic/hh-rlhf", "harmless-base")
    assert (c.generation.top_k, c.generation.top_p, c.generation.min_new_tokens) == (0, 1.0, 5)


def test_llama_config_uses_lora_bf16_and_a_claude_judge():
    c = load_config(CONFIGS / "llama-hh-claude.yaml")
    assert c.model.name_or_path == "meta-llama/Llama-3.1-8B-Instruct"
    assert c.model.lora is not None and c.accelerate.mixed_precision == "bf16"
    assert "claude" in c.judge.ref


def test_saved_config_round_trips_and_hides_secrets(tmp_path):
    c = load_config(data={**MINIMAL, "judge": {"ref": {
        "type": "llm", "provider": "anthropic", "model": "claude-x", "prompt": "toxicity",
        "max_tokens": 256}}})
    # pydantic would refuse an api_key field in a judge spec; simulate one slipping into a
    # nested dict to prove the writer redacts by key name.
    c.judge.ref["api_key"] = "sk-ant-secret-123"
    path = save_config(c, tmp_path / "run")
    text = path.read_text()
    assert "sk-ant-secret-123" not in text and "<redacted>" in text
    assert "max_tokens: 256" in text  # a token *count* is not a secret
    loaded = yaml.safe_load(text)
    loaded["judge"]["ref"].pop("api_key")
    c.judge.ref.pop("api_key")
    assert load_config(data=loaded) == c


def test_one_loader_serves_the_run_and_the_dpo_config(tmp_path):
    """`rlaif.config_loading`: both configs get the same dotted-key errors, overrides and
    YAML number fix, and paths relative to the config file."""
    from rlaif.dpo.config import load_dpo_config

    dpo = {"model": {"name_or_path": "gpt2"}, "preferences": {"path": "labels.jsonl"}}
    for load, data, what in ((load_config, MINIMAL, "run config"), (load_dpo_config, dpo, "DPO config")):
        with pytest.raises(ValueError, match="unknown config key 'eval.nn' in 'eval'; valid keys: enabled"):
            load(data=data, overrides=["eval.nn=3"])
        with pytest.raises(ValueError) as err:
            load(data=data, overrides=["eval.n=0", "generation.top_p=2"])
        assert str(err.value).splitlines() == [
            f"<config> + overrides eval.n=0 generation.top_p=2: invalid {what}",
            "  generation.top_p: Input should be less than or equal to 1 (got 2)",
            "  eval.n: Input should be greater than 0 (got 0)"]
        assert load(data=data, overrides=["generation.temperature=1e-1"]).generation.temperature == 0.1
    (tmp_path / "labels.jsonl").write_text("")
    (tmp_path / "dpo.yaml").write_text(yaml.safe_dump(dpo))
    assert load_dpo_config(tmp_path / "dpo.yaml").preferences.path == str(tmp_path / "labels.jsonl")
