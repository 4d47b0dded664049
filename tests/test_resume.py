"""Resume: a run killed after step 3 (last checkpoint at step 2) and resumed matches a run
that never stopped: same responses, same metrics, same final weights and optimiser state."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from ppo_helpers import PROMPTS, LetterJudge, make_config, one_thread  # noqa: F401

from rlaif.cli import main
from rlaif.runs.folder import RunFolder
from rlaif.runs.metrics_log import read_metrics
from rlaif.ppo.trainer import PPOTrainer

pytestmark = pytest.mark.usefixtures("one_thread")

# Wall-clock numbers differ between any two runs; everything else must match.
VOLATILE = ("time/", "tokens/per_second")


def _config(tiny_models, arch, run, *extra):
    return make_config(
        tiny_models[arch], run, "ppo.steps=4", "output.save_every=2", "ppo.ppo_epochs=2",
        # Every piece of state a resume must restore is in play: an adaptive KL coefficient,
        # running reward statistics, a decaying LR, and the prompt stream crossing an epoch.
        "ppo.kl.kind=adaptive", "ppo.kl.target=0.5", "ppo.kl.horizon=100",
        "judge.normalize=running", "ppo.lr_scheduler=linear", *extra)


def _write_cli_config(path, model, steps, out=None):
    """A small run config for CLI tests: tiny GPT-2, a function judge, 40 sample prompts."""
    data = {
        "model": {"name_or_path": str(model)},
        "judge": {"ref": {"type": "function", "function": "ppo_helpers:e_share", "scale": [0, 1]}},
        "data": {"limit": 40, "max_prompt_tokens": 96},
        "ppo": {"batch_size": 4, "mini_batch_size": 2, "steps": steps, "learning_rate": 1e-3},
        "generation": {"min_new_tokens": 2, "max_new_tokens": 4},
        "accelerate": {"cpu": True}}
    if out is not None:
        data["output"] = {"dir": str(out)}
    path.write_text(yaml.safe_dump(data))
    return path


def _stable(row):
    return {k: v for k, v in row.items() if not k.startswith(VOLATILE)}


def _trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}


@pytest.mark.slow
@pytest.mark.parametrize("arch, extra", [
    ("gpt2", ()),                             # causal, full fine-tune
    ("t5", ("model.lora={r: 4, alpha: 8}",)),  # seq2seq, LoRA (its dropout draws from the RNG)
])
def test_killed_and_resumed_run_matches_the_uninterrupted_run(tiny_models, tmp_path, arch, extra):
    # Prompts come from the 6-prompt list, 4 per step: step 2 already crosses into epoch 2.
    prompts = PROMPTS + ["Human: Thank you. Assistant:", "Human: Bake bread? Assistant:"]

    straight_judge = LetterJudge()
    straight = PPOTrainer.build(_config(tiny_models, arch, tmp_path / "straight", *extra),
                          judge=straight_judge, prompts=prompts)
    straight.train()

    run = tmp_path / "killed"
    killed = PPOTrainer.build(_config(tiny_models, arch, run, *extra),
                        judge=LetterJudge(crash_on_call=4), prompts=prompts)
    with pytest.raises(RuntimeError, match="simulated crash"):
        killed.train()  # steps 1-3 done (metrics written), checkpoint at 2, dies inside step 4
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]
    # The failed step 4 saved finished step 3 on its way out; a SIGKILL would not have, so
    # resume from the periodic checkpoint of step 2, as after a kill.
    assert RunFolder(run).latest_checkpoint() == run / "checkpoints" / "step-3"
    del killed

    resumed_judge = LetterJudge()
    resumed = PPOTrainer.build(_config(tiny_models, arch, run, *extra,
                                 f"resume={run / 'checkpoints' / 'step-2'}"),
                         judge=resumed_judge, prompts=prompts)
    assert (resumed.step_count, resumed.data_position) == (2, 8)
    resumed.train()

    # Step 3's responses were sampled from the restored RNG: identical to the straight run's.
    straight_step3 = [s.response for s in straight_judge.calls[2][0]]
    assert [s.response for s in resumed_judge.calls[0][0]] == straight_step3
    rows_straight, rows_resumed = read_metrics(tmp_path / "straight"), read_metrics(run)
    assert [r["step"] for r in rows_resumed] == [1, 2, 3, 4]  # the killed step 3 was rewritten
    _assert_same_run(straight, resumed, rows_straight, rows_resumed)


def _assert_same_run(straight, resumed, rows_straight, rows_resumed):
    """Metrics, weights, KL controller, reward statistics, LR and optimiser state all match."""
    for a, b in zip(rows_straight, rows_resumed):
        a, b = _stable(a), _stable(b)
        assert a.keys() == b.keys()
        for key in a:
            if a[key] is None or b[key] is None:
                assert a[key] == b[key], key
            else:
                assert math.isclose(a[key], b[key], rel_tol=1e-6, abs_tol=1e-9), (key, a[key], b[key])
    final_a, final_b = _trainable(straight), _trainable(resumed)
    for name in final_a:
        torch.testing.assert_close(final_a[name], final_b[name], atol=1e-6, rtol=1e-6)
    assert resumed.kl_ctl.value == pytest.approx(straight.kl_ctl.value, rel=1e-9)
    assert resumed.kl_ctl.value != 0.2  # the adaptive controller did move
    assert resumed.reward_stats.state_dict() == pytest.approx(straight.reward_stats.state_dict())
    assert resumed.scheduler.get_last_lr() == pytest.approx(straight.scheduler.get_last_lr())
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for key in opt_a:
        torch.testing.assert_close(opt_a[key]["exp_avg_sq"], opt_b[key]["exp_avg_sq"], atol=1e-9, rtol=1e-5)


@pytest.mark.slow
def test_a_failed_step_saves_the_last_finished_one_and_resume_continues_exactly(tiny_models, tmp_path):
    """#11: with `output.save_every: 0` (the default) a judge error used to lose every step."""
    prompts = PROMPTS + ["Human: Thank you. Assistant:", "Human: Bake bread? Assistant:"]
    config = lambda run, *extra: _config(tiny_models, "gpt2", run, "output.save_every=0", *extra)  # noqa: E731
    straight = PPOTrainer.build(config(tmp_path / "straight"), judge=LetterJudge(), prompts=prompts)
    straight.train()

    run = tmp_path / "failed"
    failed = PPOTrainer.build(config(run), judge=LetterJudge(crash_on_call=3), prompts=prompts)
    with pytest.raises(RuntimeError, match="simulated crash") as err:
        failed.train()
    assert any("saved the last finished step" in note for note in err.value.__notes__)
    assert RunFolder(run).latest_checkpoint() == run / "checkpoints" / "step-2"  # saved on the way out
    del failed
    resumed = PPOTrainer.build(config(run, "resume=true"), judge=LetterJudge(), prompts=prompts)
    # back at the end of step 2: the failed step's batch is drawn again
    assert (resumed.step_count, resumed.data_position) == (2, 8)
    resumed.train()
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    _assert_same_run(straight, resumed, read_metrics(tmp_path / "straight"), rows)


def test_find_resume_checkpoint_accepts_a_run_a_checkpoints_folder_or_a_step(tmp_path):
    step = tmp_path / "run" / "checkpoints" / "step-4"
    step.mkdir(parents=True)
    (step / "trainer_state.json").write_text("{}")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-4\n")
    assert RunFolder(tmp_path / "run").resume_checkpoint(True) == step
    assert RunFolder(tmp_path / "elsewhere").resume_checkpoint(str(tmp_path / "run")) == step
    assert RunFolder(tmp_path).resume_checkpoint(str(tmp_path / "run" / "checkpoints")) == step
    assert RunFolder(tmp_path).resume_checkpoint(str(step)) == step
    with pytest.raises(FileNotFoundError, match="nothing to resume in .*start without --resume"):
        RunFolder(tmp_path / "empty").resume_checkpoint(True)
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-9\n")
    with pytest.raises(FileNotFoundError, match="step-9: named by .* holds no trainer_state.json"):
        RunFolder(tmp_path / "run").resume_checkpoint(True)


@pytest.mark.slow
def test_rlaif_train_resume_continues_a_run_folder(tiny_models, tmp_path, capsys):
    """`rlaif train CONFIG --resume` picks up where the run folder's latest checkpoint left off."""
    out = tmp_path / "run"
    base = ["train", str(_write_cli_config(tmp_path / "cfg.yaml", tiny_models["gpt2"], 2, out))]
    assert main(base) == 0
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    # Resuming with more steps continues at step 3; the `ppo.steps=3` after --resume is an
    # override, not a folder.
    assert main(base + ["--resume", "ppo.steps=3"]) == 0, capsys.readouterr().err
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]
    assert RunFolder(out).latest_checkpoint() == out / "checkpoints" / "step-3"
    assert "PPO: 1 step(s) (steps 3..3)" in capsys.readouterr().out


@pytest.mark.slow
def test_sigint_between_steps_saves_and_resume_continues(tiny_models, tmp_path):
    """Ctrl-C during a run: the step in flight finishes, is saved, and the exit code is 130;
    `--resume` then continues to the same metrics as a run that was never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    cfg = _write_cli_config(tmp_path / "cfg.yaml", tiny_models["gpt2"], 500)
    tests_dir = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rlaif.cli", "train", str(cfg), "--out", str(run)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    steps_done = len(read_metrics(run))
    assert 2 <= steps_done < 500
    assert RunFolder(run).latest_checkpoint() == run / "checkpoints" / f"step-{steps_done}"
    assert "continue with --resume" in err

    # Resume for one more step, and compare with a run that was never stopped.
    more = f"ppo.steps={steps_done + 1}"
    resumed = subprocess.run([sys.executable, "-m", "rlaif.cli", "train", str(cfg), "--out", str(run),
                              "--resume", more], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight_dir = tmp_path / "straight"
    straight = subprocess.run([sys.executable, "-m", "rlaif.cli", "train", str(cfg), more, "--out",
                               str(straight_dir)], env=env, capture_output=True, text=True,
                              timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    rows, rows_straight = read_metrics(run), read_metrics(straight_dir)
    assert [r["step"] for r in rows] == list(range(1, steps_done + 2))
    for a, b in zip(rows_straight, rows):
        a, b = _stable(a), _stable(b)
        for key in a:
            if a[key] is None or b[key] is None:
                assert a[key] == b[key], key
            else:
                assert math.isclose(a[key], b[key], rel_tol=1e-6, abs_tol=1e-9), (key, a[key], b[key])


@pytest.mark.slow
def test_resume_with_changed_math_is_refused_unless_allowed_and_then_recorded(tiny_models, tmp_path, capsys):
    """#11: `--resume ppo.batch_size=16 ppo.learning_rate=0.5` used to continue silently and
    overwrite config.yaml."""
    import json

    out = tmp_path / "run"
    cfg = _write_cli_config(tmp_path / "cfg.yaml", tiny_models["gpt2"], 1, out)
    assert main(["train", str(cfg)]) == 0
    saved = (out / "config.yaml").read_text()
    capsys.readouterr()
    # a math change: refused, naming the setting, its two values and the way out
    assert main(["train", str(cfg), "ppo.steps=2", "ppo.learning_rate=0.5", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "ppo.learning_rate: 0.001 -> 0.5" in err and "--allow-changes" in err
    assert "ppo.steps" not in err.split("math")[1].split("resume with")[0]  # steps are not math
    assert [r["step"] for r in read_metrics(out)] == [1]  # nothing ran
    # more steps only: allowed, recorded
    assert main(["train", str(cfg), "--resume", "ppo.steps=2"]) == 0
    # the math change, allowed explicitly: runs and is recorded from the step it applies to
    assert main(["train", str(cfg), "ppo.steps=3", "ppo.learning_rate=0.5", "--resume",
                 "--allow-changes"]) == 0
    assert (out / "config.yaml").read_text() == saved  # never overwritten
    lines = [json.loads(x) for x in (out / "config_changes.jsonl").read_text().splitlines()]
    assert [x["from_step"] for x in lines] == [2, 3]
    assert lines[0]["changes"] == {"ppo.steps": {"was": 1, "now": 2}}
    assert lines[1]["changes"]["ppo.learning_rate"] == {"was": 0.001, "now": 0.5}
    assert lines[1]["changes"]["ppo.steps"] == {"was": 2, "now": 3}  # against the previous segment
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    # what is recorded is applied: the optimizer's lr (constant schedule) follows the change
    assert [r["ppo/lr"] for r in rows] == pytest.approx([0.001, 0.001, 0.5])

    # a revert to the first value is a change too: refused without the flag, changing nothing
    before = (out / "metrics.jsonl").read_bytes(), (out / "config_changes.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", str(cfg), "ppo.steps=4", "--resume"]) == 1
    assert "ppo.learning_rate: 0.5 -> 0.001" in capsys.readouterr().err
    assert ((out / "metrics.jsonl").read_bytes(), (out / "config_changes.jsonl").read_bytes()) == before
    # KL control changes apply too, the revert is recorded
    assert main(["train", str(cfg), "ppo.steps=4", "ppo.kl.kl_coef=0.5", "--resume", "--allow-changes"]) == 0
    lines = [json.loads(x) for x in (out / "config_changes.jsonl").read_text().splitlines()]
    assert lines[2]["from_step"] == 4
    assert lines[2]["changes"]["ppo.learning_rate"] == {"was": 0.5, "now": 0.001}
    assert lines[2]["changes"]["ppo.kl.kl_coef"]["now"] == 0.5
    last = read_metrics(out)[-1]
    assert last["step"] == 4 and last["ppo/lr"] == pytest.approx(0.001)
    assert last["objective/kl_coef"] == pytest.approx(0.5)


def test_a_resume_without_the_runs_config_is_refused(tiny_models, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _write_cli_config(tmp_path / "cfg.yaml", tiny_models["gpt2"], 1, out)
    assert main(["train", str(cfg)]) == 0
    (out / "config.yaml").unlink()
    metrics = (out / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", str(cfg), "ppo.steps=2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "config.yaml is missing, so this resume cannot be checked" in err and "Traceback" not in err
    assert (out / "metrics.jsonl").read_bytes() == metrics  # a refused resume changes nothing


@pytest.mark.slow
@pytest.mark.parametrize("damage, names", [
    ("truncate:optimizer.pt", "optimizer.pt has"),                    # cut short
    ("truncate:scheduler.pt", "scheduler.pt has"),
    ("truncate:policy/value_head.pt", "value_head.pt has"),
    ("scramble:policy/model/model.safetensors", "model.safetensors does not match"),  # same size
    ("delete:rng_state_0.pt", "rng_state_0.pt is missing"),
    ("truncate:trainer_state.json", "trainer_state.json has"),       # was "Expecting value"
])
def test_a_damaged_checkpoint_is_named_and_the_previous_good_one_offered(tiny_models, tmp_path,
                                                                        damage, names):
    run = tmp_path / "run"
    trainer = PPOTrainer.build(make_config(tiny_models["gpt2"], run, "ppo.steps=2", "output.save_every=1"),
                         judge=LetterJudge(), prompts=PROMPTS)
    trainer.train()
    how, rel = damage.split(":")
    target = run / "checkpoints" / "step-2" / rel
    data = target.read_bytes()
    if how == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif how == "scramble":
        target.write_bytes(data[:-64] + bytes(b ^ 0xFF for b in data[-64:]))
    else:
        target.unlink()
    with pytest.raises(ValueError, match=rf"step-2 is damaged: .*{names}.*--resume .*step-1"):
        PPOTrainer.build(make_config(tiny_models["gpt2"], run, "ppo.steps=3", "resume=true"),
                   judge=LetterJudge(), prompts=PROMPTS)
    # the offered checkpoint resumes
    resumed = PPOTrainer.build(make_config(tiny_models["gpt2"], run, "ppo.steps=3",
                                     f"resume={run / 'checkpoints' / 'step-1'}"),
                         judge=LetterJudge(), prompts=PROMPTS)
    assert resumed.step_count == 1


def test_a_judge_spec_edited_in_place_counts_as_a_changed_setting(tiny_models, tmp_path, capsys):
    """The reward jumped from 0.5 to -500 when a judge spec file was edited between segments."""
    import json

    out, spec = tmp_path / "run", tmp_path / "judge.yaml"
    spec.write_text("type: function\nfunction: 'ppo_helpers:e_share'\nscale: [0, 1]\n")
    cfg = _write_cli_config(tmp_path / "cfg.yaml", tiny_models["gpt2"], 1, out)
    assert main(["train", str(cfg), f"judge.ref={spec}"]) == 0
    recorded = json.loads((out / "inputs.json").read_text())
    assert recorded["judge_spec"] and recorded["data"] is None  # the bundled sample: a name
    spec.write_text("type: function\nfunction: 'ppo_helpers:e_share'\nscale: [0, 1]\n"
                    "transform: {multiply: -1000}\n")
    capsys.readouterr()
    assert main(["train", str(cfg), f"judge.ref={spec}", "ppo.steps=2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "inputs.judge_spec" in err and "--allow-changes" in err
    assert [r["step"] for r in read_metrics(out)] == [1]
    assert main(["train", str(cfg), f"judge.ref={spec}", "ppo.steps=2", "--resume", "--allow-changes"]) == 0
    change = json.loads((out / "config_changes.jsonl").read_text().splitlines()[-1])
    assert change["from_step"] == 2 and change["changes"]["inputs.judge_spec"]["was"] == recorded["judge_spec"]
    assert json.loads((out / "inputs.json").read_text())["judge_spec"] == change["changes"]["inputs.judge_spec"]["now"]
