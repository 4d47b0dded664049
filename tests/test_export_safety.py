"""`rlaif export` never destroys and never publishes what it cannot vouch for: a folder of other
files or a file as --out is refused, a checkpoint whose files.json does not verify (or that has
none) is refused naming the file, weights holding NaN are refused naming the tensor, and an
unwritable --out is a one-line error. Checkpoints here are saved policies, no training."""

from __future__ import annotations

import json
import os

import pytest
import torch

from rlaif.cli import main

STATE_FILE = "trainer_state.json"


def _checkpoint(tiny_models, root, *, lora: bool, poison: bool = False):
    """<root>/step-1: a saved tiny GPT-2 policy with files.json, as a PPO checkpoint holds it."""
    from rlaif.config import LoraSettings
    from rlaif.ppo.policy import PolicyWithValueHead
    from rlaif.runs.manifest import write_file_manifest

    policy = PolicyWithValueHead.from_pretrained(
        str(tiny_models["gpt2"]), lora=LoraSettings(r=4, alpha=8, dropout=0.0) if lora else None)
    if poison:
        with torch.no_grad():
            next(p for n, p in policy.model.named_parameters() if "h.0.mlp.c_fc.weight" in n)[0, :3] = float("nan")
    step = root / "step-1"
    policy.save(step / "policy")
    (step / STATE_FILE).write_text(json.dumps({"step": 1}))
    write_file_manifest(step)
    return step


@pytest.fixture(scope="module")
def full_step(tiny_models, tmp_path_factory):
    return _checkpoint(tiny_models, tmp_path_factory.mktemp("full"), lora=False)


@pytest.fixture(scope="module")
def lora_step(tiny_models, tmp_path_factory):
    return _checkpoint(tiny_models, tmp_path_factory.mktemp("lora"), lora=True)


def test_a_folder_of_other_files_is_refused_unless_forced(full_step, tmp_path, capsys):
    # #21: `rlaif export --out DIR` deleted whatever DIR held, exit 0.
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(["export", str(full_step), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"--out {out} already holds files that are not an earlier export (thesis.tex)" in err
    assert "pass --force" in err and "Traceback" not in err
    assert (out / "thesis.tex").read_text() == "years of work"
    assert main(["export", str(full_step), "--out", str(out), "--force"]) == 0
    assert not (out / "thesis.tex").exists() and (out / "model.safetensors").is_file()


def test_an_earlier_export_is_replaced_without_force_and_an_empty_folder_is_used(full_step, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["export", str(full_step), "--out", str(out)]) == 0
    marker = json.loads((out / "rlaif_export.json").read_text())
    assert marker == {"written_by": "rlaif", "weights": "full model"}
    assert main(["export", str(full_step), "--out", str(out)]) == 0  # an earlier export: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no temporary folder left


def test_a_file_is_never_replaced(full_step, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    for force in ([], ["--force"]):
        assert main(["export", str(full_step), "--out", str(out), *force]) == 1
        assert f"--out {out} is a file" in capsys.readouterr().err
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("damage, says", [
    ("flip", "does not match the checksum recorded when it was written (altered)"),
    ("truncate", "were written (truncated?)"),
    ("delete", "model.safetensors is missing"),
    ("no-manifest", "files.json is missing (the folder's files cannot be verified)"),
])
def test_a_checkpoint_that_does_not_verify_is_refused_naming_the_file(tiny_models, tmp_path, capsys,
                                                                      damage, says):
    # #21: a checkpoint --resume rejects as altered exported with exit 0; a truncated one was a traceback.
    step = _checkpoint(tiny_models, tmp_path, lora=False)
    weights = step / "policy" / "model" / "model.safetensors"
    data = weights.read_bytes()
    if damage == "flip":
        weights.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    elif damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        weights.unlink()
    else:
        (step / "files.json").unlink()
    out = tmp_path / "out"
    assert main(["export", str(step / "policy"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint {step} cannot be exported: " in err and says in err, err
    if damage != "no-manifest":
        assert str(weights) in err
    assert "Traceback" not in err and not out.exists()


def test_weights_holding_nan_are_refused_naming_the_tensor(tiny_models, tmp_path, capsys):
    # #21: a diverged (all-NaN) model was published with exit 0.
    step = _checkpoint(tiny_models, tmp_path, lora=False, poison=True)
    assert main(["export", str(step), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "weight transformer.h.0.mlp.c_fc.weight holds 3 of" in err
    assert "NaN or inf: the model diverged, so no model folder is written" in err
    assert not (tmp_path / "out").exists()


def test_write_final_refuses_nan_weights_of_a_lora_model(lora_step, tmp_path):
    from rlaif.export import NonFiniteWeights, write_final
    from rlaif.models.load import load_policy_lm, load_tokenizer

    lm = load_policy_lm(lora_step / "policy")
    with torch.no_grad():
        next(p for n, p in lm.named_parameters() if "lora_B" in n).fill_(float("inf"))
    with pytest.raises(NonFiniteWeights, match=r"lora_B.*holds \d+ of \d+ values that are NaN or inf"):
        write_final(lm, load_tokenizer(str(lora_step)), tmp_path / "final")
    assert not (tmp_path / "final").exists()


def test_an_unwritable_out_is_one_clear_line(full_step, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["export", str(full_step), "--out", str(blocker / "model")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"rlaif export: error: --out {blocker / 'model'}: {blocker} is a file" in err
    # A folder the user may not write in (root passes every permission check: say so by hand).
    import rlaif.export

    monkeypatch.setattr(rlaif.export.os, "access", lambda path, mode: False)
    assert main(["export", str(full_step), "--out", str(tmp_path / "locked" / "model")]) == 1
    assert "is not writable" in capsys.readouterr().err


def test_a_write_that_fails_midway_is_an_error_naming_the_folder(full_step, tmp_path, monkeypatch):
    from rlaif.export import export_checkpoint

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rlaif.export.atomic_write_json", full_disk)
    with pytest.raises(ValueError, match=r"out: the model folder could not be written \(No space left"):
        export_checkpoint(full_step, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the temporary folder is gone too


def test_model_weights_are_written_with_ordinary_permissions(full_step, tmp_path):
    # #21: model.safetensors was written 0600 while the rest of the folder was 0644.
    assert main(["export", str(full_step), "--out", str(tmp_path / "out")]) == 0
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes["model.safetensors"] == 0o666 & ~umask
    assert set(modes.values()) == {0o666 & ~umask}


def test_no_merge_says_peft_adapter_only_for_an_adapter(full_step, lora_step, tmp_path, capsys):
    # #21: --no-merge on a full checkpoint said "(PEFT adapter)".
    assert main(["export", str(full_step), "--out", str(tmp_path / "full"), "--no-merge"]) == 0
    assert "(PEFT adapter)" not in capsys.readouterr().out
    assert (tmp_path / "full" / "model.safetensors").is_file()
    assert main(["export", str(lora_step), "--out", str(tmp_path / "adapter"), "--no-merge"]) == 0
    assert "(PEFT adapter)" in capsys.readouterr().out
    assert json.loads((tmp_path / "adapter" / "rlaif_export.json").read_text())["weights"] == "PEFT adapter"
