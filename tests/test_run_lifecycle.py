"""One run lifecycle for every method: PPO and DPO runs leave the same folder layout, refuse an
existing run folder the same way, and both checkpoint, stop on a signal and resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from ppo_helpers import one_thread  # noqa: F401  (fixture)

from rlaif.cli import main
from rlaif.data.hh import load_hh
from rlaif.runs.folder import RUN_FILES, RunFolder, RunFolderTaken

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _labels(path: Path, n: int = 16) -> Path:
    """A label file as `rlaif label` writes it: n decided HH pairs."""
    rows = [{"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected, "verdict": "a",
             "strength": 0.9, "key": str(i)} for i, e in enumerate(load_hh("sample", split="train", limit=n).examples)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ppo(models: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["train", str(ROOT / "configs" / "tiny.yaml"), f"model.name_or_path={models['gpt2']}",
                 "ppo.steps=2", "eval.enabled=true", "eval.n=4", "eval.split=test", "eval.floors=[]",
                 "eval.evaluator=profanity-check", "--out", str(out), *extra])


def _dpo(models: dict[str, Path], labels: Path, out: Path, *extra: str) -> int:
    return main(["dpo", str(ROOT / "configs" / "dpo-tiny.yaml"), f"model.name_or_path={models['gpt2']}",
                 f"preferences.path={labels}", "dpo.max_steps=2", "eval.n=4", "eval.split=test",
                 "eval.floors=[]", "--out", str(out), *extra])


def _layout(run: Path) -> set[str]:
    """The run folder's entries (checkpoints/ and final/ one level deeper), step numbers as N."""
    names = {p.name for p in run.iterdir()}
    names |= {"checkpoints/" + ("step-N" if p.name.startswith("step-") else p.name)
              for p in (run / "checkpoints").iterdir()}
    names |= {f"final/{name}" for name in ("README.md", "config.json", "generation_config.json")
              if (run / "final" / name).is_file()}
    return names


def test_claim_refuses_a_run_unless_resume_or_overwrite_and_keeps_other_files(tmp_path):
    run = tmp_path / "run"
    assert RunFolder(run).claim(resume=None, overwrite=False).claimed and run.is_dir()  # fresh
    (run / "notes.txt").write_text("mine")
    RunFolder(run).claim(resume=None, overwrite=False)  # a run-free folder is used as it is
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "checkpoints").mkdir()
    (run / "evaluator").mkdir()
    with pytest.raises(RunFolderTaken, match=r"already holds a run \(metrics.jsonl, checkpoints\); "
                                             r"pass --resume .* --overwrite .* another --out for rlaif demo"):
        RunFolder(run).claim(resume=None, overwrite=False, command="rlaif demo")
    assert (run / "metrics.jsonl").is_file()  # a refusal changes nothing
    RunFolder(run).claim(resume=True, overwrite=False)
    assert (run / "metrics.jsonl").is_file()  # resume keeps the run
    RunFolder(run, extra=("evaluator",)).claim(resume=None, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # the run's own files went
    with pytest.raises(ValueError, match="contradict"):
        RunFolder(run).claim(resume=True, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        RunFolder(tmp_path / "file").claim(resume=None, overwrite=False)
    assert {"config.yaml", "metrics.jsonl", "checkpoints", "final", "report.json"} <= set(RUN_FILES)


@pytest.mark.slow
def test_ppo_and_dpo_leave_one_layout_and_refuse_an_existing_run_alike(tmp_path, tiny_models, capsys):
    ppo, dpo, labels = tmp_path / "ppo", tmp_path / "dpo", _labels(tmp_path / "labels.jsonl")
    assert _ppo(tiny_models, ppo) == 0
    assert _dpo(tiny_models, labels, dpo) == 0
    expected = {"config.yaml", "metrics.jsonl", "eval_before.json", "report.md", "report.json",
                "toxicity_hist.png", "length_hist.png", "checkpoints", "final", "checkpoints/latest",
                "checkpoints/step-N", "final/README.md", "final/config.json", "final/generation_config.json"}
    assert expected <= _layout(ppo)
    assert _layout(ppo) - {"training.png"} == _layout(dpo) - {"training.png"}
    for run in (ppo, dpo):  # each checkpoint is sealed, and `latest` names the last step
        latest = RunFolder(run).latest_checkpoint()
        assert latest == run / "checkpoints" / "step-2"
        assert (latest / "files.json").is_file() and (latest / "trainer_state.json").is_file()
    capsys.readouterr()

    for name, rerun in (("rlaif train", lambda *a: _ppo(tiny_models, ppo, *a)),
                        ("rlaif dpo", lambda *a: _dpo(tiny_models, labels, dpo, *a))):
        run = ppo if name == "rlaif train" else dpo
        before = (run / "metrics.jsonl").read_bytes(), (run / "report.json").read_bytes()
        assert rerun() == 1
        err = capsys.readouterr().err
        assert f"error: {run} already holds a run (config.yaml, inputs.json, metrics.jsonl" in err
        assert f"pass --resume to continue it, --overwrite to replace it, or choose another --out for {name}" in err
        assert ((run / "metrics.jsonl").read_bytes(), (run / "report.json").read_bytes()) == before
        (run / "notes.txt").write_text("mine")
        assert rerun("--overwrite") == 0  # start over: the run's files replaced, the user's kept
        assert (run / "notes.txt").read_text() == "mine"
        assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.slow
def test_dpo_resumes_from_its_checkpoint_as_an_uninterrupted_run(tmp_path, tiny_models):
    from safetensors.torch import load_file

    labels = _labels(tmp_path / "labels.jsonl")
    same = ("dpo.lr_scheduler_type=constant", "eval.enabled=false", "output.save_every=1")
    assert _dpo(tiny_models, labels, tmp_path / "straight", "dpo.max_steps=4", *same) == 0
    assert _dpo(tiny_models, labels, tmp_path / "run", "dpo.max_steps=2", *same) == 0
    assert _dpo(tiny_models, labels, tmp_path / "run", "dpo.max_steps=4", "--resume", *same) == 0
    run = tmp_path / "run"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert RunFolder(run).latest_checkpoint() == run / "checkpoints" / "step-4"
    straight = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    resumed = load_file(run / "final" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    start = load_file(tiny_models["gpt2"] / "model.safetensors")
    shared = [k for k in straight if k in start and start[k].shape == straight[k].shape]
    trained = max(float((straight[k].float() - start[k].float()).abs().max()) for k in shared)
    worst = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight)
    assert shared and trained > 1e-4  # 4 DPO steps moved the (LoRA-merged) weights
    assert worst <= 1e-3 * trained  # the resumed run continued where it stopped (same data, RNG, optimizer)


@pytest.mark.slow
def test_a_signal_stops_dpo_after_the_step_saving_it(tmp_path, tiny_models, monkeypatch, capfd):
    """SIGTERM during DPO: the step finishes, a checkpoint is saved, the run says how to resume
    (exit 130, no traceback), and --resume finishes the run."""
    from transformers import TrainerCallback

    import rlaif.dpo.method as dpo_method

    class TermAtStep2(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:  # during step 2
                os.kill(os.getpid(), signal.SIGTERM)

    real = dpo_method.dpo_callbacks
    monkeypatch.setattr(dpo_method, "dpo_callbacks", lambda *a, **k: [*real(*a, **k), TermAtStep2()])
    labels = _labels(tmp_path / "labels.jsonl")
    run = tmp_path / "run"
    assert _dpo(tiny_models, labels, run, "dpo.max_steps=4", "eval.enabled=false") == 130
    captured = capfd.readouterr()
    assert "SIGTERM: DPO stopping after this step" in captured.err
    assert f"SIGTERM after step 2: saved {run / 'checkpoints' / 'step-2'}; continue with --resume" in captured.err
    assert "Traceback" not in captured.err and not (run / "final").exists()
    monkeypatch.setattr(dpo_method, "dpo_callbacks", real)
    assert _dpo(tiny_models, labels, run, "dpo.max_steps=4", "eval.enabled=false", "--resume") == 0
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert (run / "final" / "model.safetensors").is_file()


def test_a_diverging_ppo_run_fails_naming_the_quantity_and_publishes_nothing(tmp_path, tiny_models, capsys):
    run = tmp_path / "run"
    rc = main(["train", str(ROOT / "configs" / "tiny.yaml"), f"model.name_or_path={tiny_models['gpt2']}",
               "ppo.steps=4", "ppo.learning_rate=1e12", "ppo.max_grad_norm=null", "--out", str(run)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "is not finite (NaN or inf): the run diverged" in err and "Lower ppo.learning_rate" in err
    assert not (run / "final").exists()
    latest = RunFolder(run).latest_checkpoint()
    if latest is not None:  # only a step whose weights were all finite was saved
        from safetensors.torch import load_file

        import torch

        weights = [p for f in (latest / "policy").rglob("*.safetensors") for p in load_file(f).values()]
        assert weights and all(bool(torch.isfinite(w).all()) for w in weights)


def test_dpo_pairs_leave_out_nan_strengths_and_identical_replies(tmp_path):
    from rlaif.dpo.config import PreferenceConfig
    from rlaif.dpo.data import load_preferences

    rows = [{"prompt": "p", "chosen": "kind", "rejected": "rude", "strength": 0.9},
            {"prompt": "p", "chosen": "kind", "rejected": "rude", "strength": float("nan")},
            {"prompt": "p", "chosen": "same ", "rejected": "same", "strength": 0.9}]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # json writes NaN as NaN
    prefs = load_preferences(PreferenceConfig(path=str(path), min_strength=0.5), chat=False)
    assert len(prefs.rows) == 1
    assert prefs.left_out == {"ties or unscored": 0, "below min_strength": 1, "identical replies": 1}
    assert "1 identical replies" in prefs.summary()


def test_an_out_that_cannot_be_made_is_one_line_naming_the_folder(tmp_path, tiny_models, capsys):
    """An OSError (here: --out under a file; alike for a read-only folder or a full disk) is one
    line naming the path, not a traceback."""
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "run"
    assert main(["train", str(ROOT / "configs" / "tiny.yaml"), f"model.name_or_path={tiny_models['gpt2']}",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rlaif train: error: Not a directory: ") and str(tmp_path / "a-file") in err
    assert "Traceback" not in err
