"""Two processes on CPU: `torchrun --nproc_per_node 2` + `Accelerator(cpu=True)` (gloo).

Each process takes its half of every batch; metrics in metrics.jsonl are gathered over
both; DDP keeps the weights identical on both processes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif.data.prompts import PromptStream
from rlaif.runs.metrics_log import read_metrics

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


PORT_CLASH = ("EADDRINUSE", "Address already in use", "address already in use")


def torchrun(model_dir: Path, out: Path, mode: str = "full") -> subprocess.CompletedProcess:
    """Two worker processes (tests/ddp_worker.py) on `out`.

    `--standalone` lets torchrun pick free ports, but between picking and binding another job on
    the machine (a second test suite, another torchrun) can take the port; the workers then fail
    at start-up, before any step, with "address already in use". That start is simply tried
    again (at most 3 times), so the test holds on a busy machine."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             str(TESTS / "ddp_worker.py"), str(model_dir), str(out), mode],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode == 0 or not any(text in proc.stderr for text in PORT_CLASH):
            return proc
    return proc


@pytest.fixture(scope="module")
def full_run(tiny_models, tmp_path_factory) -> Path:
    """Two uninterrupted steps on two processes."""
    out = tmp_path_factory.mktemp("ddp") / "ddp-run"
    proc = torchrun(tiny_models["gpt2"], out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _steady(row: dict) -> dict:
    """A metrics row without its timings."""
    return {k: v for k, v in row.items() if not k.startswith(("time/", "tokens/"))}


@pytest.mark.slow
def test_two_processes_complete_steps_with_gathered_metrics(full_run):
    from ppo_helpers import PREAMBLE, PROMPTS

    out = full_run

    workers = [json.loads((out / f"worker_{r}.json").read_text()) for r in (0, 1)]
    assert [(w["rank"], w["world"], w["local_batch"]) for w in workers] == [(0, 2, 2), (1, 2, 2)]
    # The prompts share a header: each process ran it once per batch (rlaif.models.prefix).
    assert all(w["shared_prefix"] >= 8 for w in workers), [w["shared_prefix"] for w in workers]
    # Each process judged its own half of the global batch: together, the seeded stream's batch.
    prompts = [PREAMBLE + p for p in PROMPTS] * 2
    stream = PromptStream(len(prompts), seed=0)
    for step in range(2):
        global_batch = [prompts[i] for i in stream.indices(4 * step, 4)]
        assert workers[0]["prompts"][step] + workers[1]["prompts"][step] == global_batch
    # Gathered metrics: 3 of 4 samples scored (process 1 dropped one), scores 0, 0 (process 0)
    # and 1 (process 1), so the mean is 1/3 only if both processes' samples were counted.
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert (row["batch/size"], row["reward/scored"], row["reward/unscored"]) == (4, 3, 1)
        assert row["reward/mean"] == pytest.approx(1 / 3)
        assert row["reward/std"] == pytest.approx(math.sqrt(2) / 3)
        assert row["judge/requests"] == 1 + 2 and row["judge/cost_usd"] == pytest.approx(0.25 + 0.5)  # summed
        assert math.isfinite(row["objective/kl"]) and math.isfinite(row["ppo/loss/total"])
    # Step 1 samples from the untouched policy: KL 0, to float rounding (the rollout logprobs
    # come from generation's hidden states, ppo.rollout_logprobs auto; rounding differs by CPU).
    assert abs(rows[0]["objective/kl"]) <= 1e-5
    # Every process logged the same gathered numbers, and DDP kept the weights in step.
    for a, b in zip(workers[0]["history"], workers[1]["history"]):
        assert _steady(a) == _steady(b)
    assert workers[0]["checksum"] == workers[1]["checksum"]
    # One checkpoint per step, with each process's RNG state.
    step2 = out / "checkpoints" / "step-2"
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-2"
    assert (step2 / "rng_state_0.pt").is_file() and (step2 / "rng_state_1.pt").is_file()
    assert json.loads((step2 / "trainer_state.json").read_text())["num_processes"] == 2


@pytest.mark.slow
def test_a_judge_error_on_one_process_saves_the_last_step_on_all_and_resume_continues(
        tiny_models, tmp_path, full_run):
    """#11: with two processes, process 1's judge fails in step 2. Both processes hear of it at
    the score gather, save step 1 together and exit non-zero; --resume then reproduces the
    uninterrupted step 2."""
    out = tmp_path / "ddp-run"
    proc = torchrun(tiny_models["gpt2"], out, "fail")
    assert proc.returncode != 0
    assert "process 1: JudgeError: budget spent on process 1" in proc.stderr
    assert proc.stderr.count("step 2 failed; saved the last finished step") >= 2  # both processes
    checkpoints = out / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step-1"
    assert sorted(p.name for p in checkpoints.iterdir() if p.is_dir()) == ["step-1"]
    assert (checkpoints / "step-1" / "rng_state_0.pt").is_file()
    assert (checkpoints / "step-1" / "rng_state_1.pt").is_file()

    proc = torchrun(tiny_models["gpt2"], out, "resume")
    assert proc.returncode == 0, proc.stderr[-4000:]
    resumed, full = read_metrics(out), read_metrics(full_run)
    assert [r["step"] for r in resumed] == [1, 2]
    for got, want in zip(resumed, full):  # same path, same machine: to float rounding
        got, want = _steady(got), _steady(want)
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
