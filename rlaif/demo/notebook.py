"""What the walk-through notebook (`notebooks/rlaif_detoxify.ipynb`) needs beyond the library.

The notebook runs in two modes from one parameters cell:

- full: the real models (google/flan-t5-base, facebook/roberta-hate-speech-dynabench-r4-target,
  Claude through Amazon Bedrock) on an `ml.g5.2xlarge`-class instance;
- SMOKE: everything offline in minutes: tiny models built locally and the fake Claude
  server on 127.0.0.1 standing in for Bedrock and the Anthropic API.

`notebook_setup(smoke, work_dir)` returns the same `NotebookSetup` either way, so every
later cell is identical in both modes: only the ids and endpoints differ.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSTANCE_TYPE = "ml.g5.2xlarge"  # 1 x NVIDIA A10G (24 GB): Flan-T5-base PPO + RoBERTa judge
FULL_POLICY = "google/flan-t5-base"
FULL_CLASSIFIER = "facebook/roberta-hate-speech-dynabench-r4-target"
JUDGE_REFS = {"roberta": "roberta-hate", "claude": "claude-toxicity-bedrock",
              "hhh": "hhh-ensemble"}
# PPO settings of the SMOKE run: a few tiny steps, just to run every code path.
SMOKE_PPO_OVERRIDES = ("ppo.steps=2", "ppo.learning_rate=5e-3", "ppo.batch_size=4",
                       "ppo.mini_batch_size=2", "generation.max_new_tokens=8", "data.limit=40",
                       "data.min_prompt_tokens=1", "data.max_prompt_tokens=96",
                       "output.log_every=1", "accelerate.cpu=true")


@dataclass
class NotebookSetup:
    """Models, judge specs, data source and PPO overrides for one notebook mode."""

    smoke: bool
    work_dir: Path
    policy: str
    data: str
    data_dir: str | None
    judges: dict[str, Any]  # name -> spec (built-in name or dict) for build_judge
    reward: Any  # the PPO reward judge spec
    evaluator: Any  # the hold-out evaluator spec (a different judge than the reward)
    ppo_overrides: list[str] = field(default_factory=list)
    _fake: Any = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def close(self) -> None:
        """Stop the fake Claude server (SMOKE) and restore the environment it changed."""
        if self._fake is not None:
            self._fake.__exit__(None, None, None)
            self._fake = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()


def offline_spec(ref: str | dict[str, Any], classifier: str, claude_url: str) -> dict[str, Any]:
    """A judge spec with every classifier pointed at `classifier` and every Claude call at the fake server."""
    from rlaif.judges.spec import load_spec, parse_spec

    spec = (load_spec(ref) if isinstance(ref, str) else parse_spec(ref)).model_dump(mode="json")
    return _point_offline(spec, classifier, claude_url)


def _point_offline(spec: dict[str, Any], classifier: str, claude_url: str) -> dict[str, Any]:
    kind = spec["type"]
    if kind == "classifier":
        return {**spec, "model": classifier, "device": "cpu"}
    if kind == "llm":
        endpoint = "base_url" if spec["provider"] == "anthropic" else "endpoint_url"
        return {**spec, endpoint: claude_url, "max_retries": 0, "requests_per_minute": None}
    if kind == "ensemble":
        members = []
        for m in spec["members"]:
            judge = m["judge"]
            inner = offline_spec(judge, classifier, claude_url) if isinstance(judge, str) \
                else _point_offline(judge, classifier, claude_url)
            members.append({**m, "judge": inner})
        return {**spec, "members": members}
    return spec


def notebook_setup(smoke: bool, work_dir: str | Path = "runs/notebook") -> NotebookSetup:
    """Everything the notebook's cells need for `smoke` (offline) or the full run."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if not smoke:
        return NotebookSetup(
            smoke=False, work_dir=work, policy=FULL_POLICY, data="Anthropic/hh-rlhf",
            data_dir="harmless-base", judges=dict(JUDGE_REFS), reward="roberta-hate",
            # Claude judges the hold-out set: a different judge than the reward, so reward
            # hacking shows up as a gap between the two.
            evaluator="claude-toxicity-bedrock",
            ppo_overrides=[f"output.dir={work / 'run'}", "judge.ref=roberta-hate"],
        )
    from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude
    from rlaif.testing.tiny import build_tiny_roberta_classifier, build_tiny_t5

    models = work / "tiny-models"
    policy = build_tiny_t5(models / "t5")
    reward_clf = build_tiny_roberta_classifier(models / "roberta-reward", seed=0)
    eval_clf = build_tiny_roberta_classifier(models / "roberta-evaluator", seed=1)
    fake = FakeClaude().__enter__()
    # The real anthropic/boto3 clients insist on credentials; the fake never checks them.
    # Dummy ones replace any real ones while SMOKE runs, so nothing real is ever sent.
    saved = {k: os.environ.get(k) for k in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    judges = {name: offline_spec(ref, str(reward_clf), fake.url) for name, ref in JUDGE_REFS.items()}
    reward = judges["roberta"]
    evaluator = {**reward, "model": str(eval_clf), "name": "tiny-evaluator"}
    overrides = [f"model.name_or_path={policy}", f"output.dir={work / 'run'}",
                 "data.source=sample", f"judge.ref={json.dumps(reward)}", *SMOKE_PPO_OVERRIDES]
    return NotebookSetup(
        smoke=True, work_dir=work, policy=str(policy), data="sample", data_dir=None,
        judges=judges, reward=reward, evaluator=evaluator, ppo_overrides=overrides,
        _fake=fake, _saved_env=saved,
    )
