"""What both run configs (`rlaif train`, `rlaif dpo`) refuse: infinite and NaN numbers in every
numeric setting, a key given twice in the YAML file, a file that is not UTF-8; and the
run-folder settings they share (`resume`, `overwrite`)."""

from __future__ import annotations

import types
import typing

import pytest
import yaml
from pydantic import BaseModel

from rlaif.config import RunConfig, load_config
from rlaif.config_loading import ConfigSection
from rlaif.dpo.config import DPORunConfig, load_dpo_config

RUN = {"model": {"name_or_path": "gpt2"}, "judge": {"ref": "roberta-hate"}}
DPO = {"model": {"name_or_path": "gpt2"}, "preferences": {"path": "labels.jsonl"}}


def _members(annotation) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def numeric_keys(model: type[BaseModel], prefix: str = "", floats_only: bool = False) -> list[str]:
    """The dotted key of every float (and int) setting of `model`, sections included."""
    keys = []
    for name, field in model.model_fields.items():
        for member in _members(field.annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                keys += numeric_keys(member, f"{prefix}{name}.", floats_only)
            elif member is float or (member is int and not floats_only):
                keys.append(f"{prefix}{name}")
                break
    return keys


def sections(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for member in _members(field.annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                found |= sections(member)
    return found


RUN_KEYS, DPO_KEYS = numeric_keys(RunConfig), numeric_keys(DPORunConfig)
FLOAT_KEYS = set(numeric_keys(RunConfig, floats_only=True))


def test_the_walk_finds_the_settings_of_the_issue():
    # #21: ppo.learning_rate=.inf and ppo.vf_coef=.inf were accepted and the run diverged.
    assert {"ppo.learning_rate", "ppo.vf_coef", "ppo.kl.kl_coef", "model.lora.alpha",
            "data.test_size", "judge.clip"} <= set(RUN_KEYS)
    assert {"dpo.beta", "dpo.learning_rate", "preferences.min_strength"} <= set(DPO_KEYS)


@pytest.mark.parametrize("model", [RunConfig, DPORunConfig])
def test_every_section_refuses_non_finite_numbers_through_one_base(model):
    assert all(issubclass(s, ConfigSection) for s in sections(model))


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "inf"])
@pytest.mark.parametrize("key", RUN_KEYS)
def test_run_config_refuses_a_non_finite_number_naming_the_key(key, value):
    with pytest.raises(ValueError) as err:
        load_config(data=RUN, overrides=[f"{key}={value}"])
    message = str(err.value)
    assert message.count("\n") == 1  # one line for the key, not one per union member
    if value == "inf" and key not in FLOAT_KEYS:  # the text 'inf' is no integer to begin with
        assert f"  {key}: Input should be a valid integer" in message
    else:
        assert f"  {key}: must be a finite number" in message and "give an ordinary number" in message


@pytest.mark.parametrize("key", DPO_KEYS)
def test_dpo_config_refuses_a_non_finite_number_naming_the_key(key):
    with pytest.raises(ValueError, match=rf"  {key}: must be a finite number"):
        load_dpo_config(data=DPO, overrides=[f"{key}=.inf"])


def test_dpo_beta_must_be_finite_and_positive():
    with pytest.raises(ValueError, match=r"dpo.beta: must be a finite number.*\(got inf\)"):
        load_dpo_config(data={**DPO, "dpo": {"beta": float("inf")}})
    with pytest.raises(ValueError, match="dpo.beta: Input should be greater than 0"):
        load_dpo_config(data=DPO, overrides=["dpo.beta=0"])


def test_assignment_is_checked_too():
    config = load_config(data=RUN)
    with pytest.raises(ValueError, match="finite number"):
        config.ppo.learning_rate = float("nan")


@pytest.mark.parametrize("load, data", [(load_config, RUN), (load_dpo_config, DPO)])
def test_a_key_given_twice_names_the_file_the_key_and_both_lines(tmp_path, load, data):
    # #21: a second ppo: block silently replaced the first (lr 1e-3 -> the default).
    path = tmp_path / "run.yaml"
    text = yaml.safe_dump(data) + "generation:\n  top_k: 0\n  top_p: 0.9\ngeneration:\n  top_k: 5\n"
    path.write_text(text)
    first = text.splitlines().index("generation:") + 1
    with pytest.raises(ValueError) as err:
        load(path)
    assert str(err.value).startswith(
        f"{path}: key 'generation' is given twice in the ")
    assert f"at line {first} and at line {first + 3}; " in str(err.value)
    assert "merge them into one" in str(err.value)


def test_a_nested_key_given_twice_is_named_by_its_dotted_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name_or_path: gpt2\njudge:\n  ref: roberta-hate\n"
                    "ppo:\n  kl:\n    kl_coef: 0.1\n    kl_coef: 0.5\n")
    with pytest.raises(ValueError, match=r"key 'ppo.kl.kl_coef' is given twice .* line 7 and at line 8"):
        load_config(path)


def test_a_config_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model:\n  name_or_path: gpt2\njudge:\n  ref: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{path}: the run config is not UTF-8 .*save it as UTF-8"):
        load_config(path)


@pytest.mark.parametrize("load, data", [(load_config, RUN), (load_dpo_config, DPO)])
def test_both_configs_carry_resume_and_overwrite(load, data):
    config = load(data=data)
    assert (config.resume, config.overwrite) == (False, False)
    config = load(data=data, overrides=["resume=runs/x/checkpoints/step-2", "overwrite=true"])
    assert (config.resume, config.overwrite) == ("runs/x/checkpoints/step-2", True)
    assert (RunConfig.model_fields["overwrite"].description
            == DPORunConfig.model_fields["overwrite"].description)
    assert "its files are replaced" in RunConfig.model_fields["overwrite"].description
    assert RunConfig.model_fields["resume"].annotation == DPORunConfig.model_fields["resume"].annotation


def test_a_judge_spec_with_a_key_given_twice_is_refused(tmp_path):
    from rlaif.judges.base import JudgeError
    from rlaif.judges.spec import load_spec

    spec = tmp_path / "j.yaml"
    spec.write_text("type: function\nfunction: 'judge_fns:politeness'\nscale: [0, 2]\nscale: [0, 5]\n")
    with pytest.raises(JudgeError, match=r"j.yaml: key 'scale' is given twice .* line 3 and at line 4"):
        load_spec(spec)
